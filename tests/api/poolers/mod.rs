//! "The service works through every way a Supabase project is reached" (docs/design.md, Connection
//! poolers): the same suite against the direct connection and through PgBouncer (Debian's
//! package, stock configuration) in session mode and in transaction mode.
//!
//! Each rule is one function taking the [`Upstream`]; `through_each_upstream!` turns it into
//! three tests, `<rule>::direct`, `<rule>::pgbouncer_session`, `<rule>::pgbouncer_transaction`.
//! Without PgBouncer installed the PgBouncer tests print a notice and pass, except under CI
//! (`CI` set), where they fail.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use stripe_customer_sync::store::pool::{self, PoolMode};

use crate::helpers::events::thin_event;
use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::pgbouncer::{Route, Upstream};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Customer, StripeDouble, TEST_API_KEY};
use crate::helpers::{
    DedicatedCluster, TestApp, TestDatabase, event_id_of, migrated_database, now,
    spawn_app_from_env,
};

mod in_process;
mod serve_processes;

use in_process::{
    concurrent_events_on_shared_server_connections_are_all_applied,
    database_outage_answers_503_within_5_s_then_recovers_without_restart,
    events_are_applied_in_order_and_redeliveries_change_nothing, readiness_reports_ready,
    statement_held_past_the_timeout_is_cancelled_by_the_server_and_answered_503,
};
use serve_processes::{
    duplicates_across_two_serve_processes_are_applied_exactly_once_and_in_order,
    thin_events_and_the_background_catch_up_apply_what_stripe_holds,
};

macro_rules! through_each_upstream {
    ($($rule:ident),* $(,)?) => {$(
        mod $rule {
            use super::*;

            #[tokio::test]
            async fn direct() {
                super::$rule(Upstream::Direct).await;
            }

            #[tokio::test]
            async fn pgbouncer_session() {
                super::$rule(Upstream::PgBouncer(PoolMode::Session)).await;
            }

            #[tokio::test]
            async fn pgbouncer_transaction() {
                super::$rule(Upstream::PgBouncer(PoolMode::Transaction)).await;
            }
        }
    )*};
}

through_each_upstream!(
    events_are_applied_in_order_and_redeliveries_change_nothing,
    concurrent_events_on_shared_server_connections_are_all_applied,
    readiness_reports_ready,
    duplicates_across_two_serve_processes_are_applied_exactly_once_and_in_order,
    database_outage_answers_503_within_5_s_then_recovers_without_restart,
    statement_held_past_the_timeout_is_cancelled_by_the_server_and_answered_503,
    thin_events_and_the_background_catch_up_apply_what_stripe_holds,
);

/// The in-process app on `db`, reaching it through `upstream`; `None` when that needs a
/// PgBouncer that is not installed. The route must outlive the app.
pub(super) async fn app_through(upstream: Upstream, db: TestDatabase) -> Option<(TestApp, Route)> {
    let route = Route::open(upstream, &db.url, &db.name)?;
    let env = vec![
        ("DATABASE_URL", route.url().to_owned()),
        ("DATABASE_POOL_MODE", route.pool_mode().as_str().to_owned()),
    ];
    let app = spawn_app_from_env(db, env, |_| {}).await;
    Some((app, route))
}

impl TestApp {
    pub(super) async fn deliver_json_owned(&self, payload: String) -> (u16, Value) {
        self.deliver_json(&payload).await
    }

    pub(super) async fn readyz_status(&self) -> u16 {
        self.client
            .get(format!("{}/readyz", self.address))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// A `serve` process through `route` (its migrations over `migration_url`), with `env` on top,
/// once it answers `/readyz`; killed if the test fails half-way.
pub(super) async fn serve_through(
    route: &Route,
    migration_url: &str,
    env: &[(&str, &str)],
) -> ServeProcess {
    ServeProcess::command(route.url())
        .migrating()
        .envs(env)
        .env("DATABASE_POOL_MODE", route.pool_mode().as_str())
        .env("MIGRATION_DATABASE_URL", migration_url)
        // Both modes' events, as a deployment without STRIPE_MODE keeps them.
        .env_remove("STRIPE_MODE")
        .start()
        .await
        .ready()
        .await
}
