//! One event's use of the database, shaped by the connection pooler in front of PostgreSQL.
//!
//! Supabase projects are reached directly, through Supavisor or through PgBouncer, in session
//! or transaction mode. A session-mode pooler (or none) hands the client one server connection
//! for its whole life: session state (a `SET`, a prepared statement) stays put, so an event runs
//! exactly as before: named, cached prepared statements, each write one autocommitted statement,
//! the statement timeout set once when the connection was opened (see [`super::pool`]).
//!
//! A transaction-mode pooler hands each transaction to whichever server connection is free, and
//! outside a transaction even each protocol message. So in that mode an [`EventScope`]:
//! - opens an explicit transaction, with `set local statement_timeout` in the SAME round trip
//!   (`set local` dies with the transaction, so it never leaks to another client's work, and
//!   the pooler cannot lose it between statements);
//! - runs every statement as an unnamed prepared statement ([`Unnamed`]), which the server
//!   forgets by the next one: no named statement outlives its transaction, so no
//!   "prepared statement sqlx_s_1 does not exist / already exists" on a shared server
//!   connection. The parse, describe, bind and execute of one statement stay on one server
//!   connection because the transaction pins it;
//! - commits at the end; a scope dropped before (an error, the client deadline) rolls back,
//!   sqlx's transaction guard sees to it before the connection is reused.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{AssertSqlSafe, Either, Execute, Executor, PgConnection, PgPool, Postgres, SqlStr};

use super::StoreError;
use super::pool::{ConnectionPolicy, PoolMode};

/// The database work of one event: statements run on it through `&mut scope`, as on a
/// connection; [`EventScope::commit`] ends it.
pub struct EventScope<'c> {
    /// Where [`EventScope::restart`] takes the next connection from; `None` for a borrowed one.
    pool: Option<PgPool>,
    policy: ConnectionPolicy,
    open: Open<'c>,
}

enum Open<'c> {
    /// Direct or session pooler: one pooled connection, each statement commits on its own.
    Session(PoolConnection<Postgres>),
    /// Transaction pooler: an explicit transaction; unnamed statements only.
    Transaction(sqlx::Transaction<'static, Postgres>),
    /// The caller's own connection, maybe inside the caller's transaction; `unnamed` when that
    /// connection goes through a transaction pooler.
    Borrowed {
        connection: &'c mut PgConnection,
        unnamed: bool,
    },
}

impl fmt::Debug for EventScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventScope")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl EventScope<'static> {
    /// Takes a connection from `pool` and, in transaction mode, begins the transaction with its
    /// statement timeout: one round trip, none in session mode.
    pub async fn begin(pool: &PgPool, policy: ConnectionPolicy) -> Result<Self, StoreError> {
        Ok(Self {
            pool: Some(pool.clone()),
            policy,
            open: open(pool, policy).await?,
        })
    }
}

impl<'c> EventScope<'c> {
    /// A scope on the caller's connection, which keeps its session (a batch command's): no
    /// transaction of ours, statements as on the connection itself.
    pub fn on(connection: &'c mut PgConnection) -> Self {
        Self::within(connection, ConnectionPolicy::default())
    }

    /// A scope inside the caller's own transaction on a connection of `policy`'s pool: no
    /// transaction of ours (the caller commits), and unnamed statements behind a transaction
    /// pooler, where a named one would stay on the server connection after the commit.
    pub fn within(connection: &'c mut PgConnection, policy: ConnectionPolicy) -> Self {
        Self {
            pool: None,
            policy,
            open: Open::Borrowed {
                connection,
                unnamed: !policy.mode.keeps_sessions(),
            },
        }
    }

    /// Makes the event's writes durable (transaction mode); in session mode each statement
    /// already committed and this only returns the connection.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.open {
            Open::Session(_) | Open::Borrowed { .. } => Ok(()),
            Open::Transaction(transaction) => Ok(transaction.commit().await?),
        }
    }

    /// Makes the scope usable again after a statement failed and the caller goes on (decides
    /// again after a lost race, records the event as `failed`): a failed statement aborts a
    /// transaction, so in transaction mode this rolls back and begins anew. Nothing to do in
    /// session mode, where the failed statement was its own transaction.
    pub async fn restart(&mut self) -> Result<(), StoreError> {
        if let (Open::Transaction(_), Some(pool)) = (&self.open, &self.pool) {
            // Replacing the guard drops the old transaction: sqlx queues its rollback, sent
            // before the connection is used again.
            self.open = open(pool, self.policy).await?;
        }
        Ok(())
    }

    /// A transaction of its own (a savepoint inside one already open) for work of several
    /// statements that must commit together, and the policy for a scope
    /// ([`EventScope::within`]) on it, which keeps its statements unnamed behind a transaction
    /// pooler. Dropped uncommitted, it rolls back.
    pub(crate) async fn nested(
        &mut self,
    ) -> Result<(sqlx::Transaction<'_, Postgres>, ConnectionPolicy), StoreError> {
        let policy = self.policy;
        let (connection, _) = self.connection();
        Ok((sqlx::Connection::begin(connection).await?, policy))
    }

    fn connection(&mut self) -> (&mut PgConnection, bool) {
        match &mut self.open {
            Open::Session(connection) => (&mut **connection, true),
            Open::Borrowed {
                connection,
                unnamed,
            } => (&mut **connection, !*unnamed),
            Open::Transaction(transaction) => (&mut **transaction, false),
        }
    }
}

async fn open<'c>(pool: &PgPool, policy: ConnectionPolicy) -> Result<Open<'c>, StoreError> {
    Ok(match policy.mode {
        PoolMode::Session => Open::Session(pool.acquire().await?),
        PoolMode::Transaction => Open::Transaction(
            pool.begin_with(AssertSqlSafe(begin_statement(policy.statement_timeout)))
                .await?,
        ),
    })
}

/// `BEGIN` and the transaction's statement timeout, sent as one simple query.
fn begin_statement(statement_timeout: Duration) -> String {
    format!(
        "begin; set local statement_timeout = '{}ms'",
        statement_timeout.as_millis()
    )
}

/// A query that runs as an unnamed prepared statement, whatever it asked for.
pub(crate) struct Unnamed<E>(pub E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> SqlStr {
        self.0.sql()
    }

    fn statement(&self) -> Option<&PgStatement> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

/// `&mut scope` runs statements as `&mut PgConnection` does, unnamed in transaction mode.
impl<'s, 'c: 's> Executor<'s> for &'s mut EventScope<'c> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        's: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        match self.connection() {
            (connection, true) => connection.fetch_many(query),
            (connection, false) => connection.fetch_many(Unnamed(query)),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        's: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        match self.connection() {
            (connection, true) => connection.fetch_optional(query),
            (connection, false) => connection.fetch_optional(Unnamed(query)),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        's: 'e,
    {
        // An explicitly prepared statement is named by sqlx; nothing on the serving path
        // prepares one, and in transaction mode none may be.
        self.connection().0.prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        's: 'e,
    {
        self.connection().0.describe(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_begins_with_its_statement_timeout_in_one_statement() {
        assert_eq!(
            begin_statement(Duration::from_secs(4)),
            "begin; set local statement_timeout = '4000ms'"
        );
    }

    #[test]
    fn unnamed_queries_are_never_persistent() {
        let query = sqlx::query::<Postgres>("select 1");
        assert!(Execute::persistent(&query));
        assert!(!Execute::persistent(&Unnamed(query)));
    }
}
