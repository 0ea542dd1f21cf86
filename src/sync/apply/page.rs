//! A page of fetched customers (`backfill`, `verify --fix`): read in one statement, written
//! in one.

use std::collections::HashSet;

use uuid::Uuid;

use super::{AppliedCustomer, Applying, Plan, Recording, apply_one, key_of, plan};
use crate::store::StoreError;
use crate::store::customers::{self, RowToWrite, SnapshotKey};
use crate::store::session::EventScope;
use crate::sync::SyncError;
use crate::sync::request::FetchRun;
use crate::sync::rules::UserFacts;

/// Applies a page of states `run` fetched, results in the order of `states`:
/// the page is read in one statement and written in one, in page order, as a webhook consumer
/// would apply them one after the other; a state whose write lost its race, or whose customer
/// is listed twice, then goes through [`apply_one`].
pub(crate) async fn apply_page(
    scope: &mut EventScope<'_>,
    run: &FetchRun,
    states: &[Applying<'_, &FetchRun>],
) -> Result<Vec<AppliedCustomer>, SyncError> {
    // A customer listed twice (Stripe does not do that, but the rules must not see two writes
    // of one row in one statement) is decided on its own after the page.
    let mut seen = HashSet::with_capacity(states.len());
    // So is a customer naming an organization: the page's write checks only users' races.
    let (batch, one_by_one): (Vec<usize>, Vec<usize>) = (0..states.len()).partition(|&i| {
        let state = states[i].state();
        !state.link.is_organization() && seen.insert(state.customer_id.as_str())
    });

    let keys: Vec<SnapshotKey<'_>> = batch.iter().map(|&i| key_of(states[i].state())).collect();
    let snapshots = customers::snapshot_page(&mut *scope, &keys).await?;

    // A user claimed by an earlier customer of the page is linked elsewhere for the later ones.
    let mut claimed: HashSet<Uuid> = HashSet::new();
    let mut results: Vec<Option<AppliedCustomer>> = vec![None; states.len()];
    let mut writes = Vec::new();
    for (&index, snapshot) in batch.iter().zip(&snapshots) {
        let state = states[index].state();
        let mut planned = plan(&run, state, snapshot, snapshot.user);
        if let Plan::Write { row, .. } = &planned
            && let Some(user) = row.user_id
            && !claimed.insert(user)
        {
            let taken = UserFacts {
                exists: true,
                linked_elsewhere: true,
            };
            planned = plan(&run, state, snapshot, taken);
        }
        match planned {
            Plan::Done(result) => results[index] = Some(result),
            Plan::Write { result, .. } if run.dry_run() => results[index] = Some(result),
            Plan::Write {
                version,
                row,
                result,
            } => writes.push((index, version, row, result)),
            Plan::RecordSkip { skip, .. } => match skip {},
        }
    }

    let rows: Vec<RowToWrite<'_>> = writes
        .iter()
        .map(|(index, version, row, _)| RowToWrite {
            stripe_customer_id: states[*index].state().customer_id.as_str(),
            version: version.as_deref(),
            row,
        })
        .collect();
    let written = match customers::write_page(&mut *scope, &run.run_id, &rows).await {
        Ok(written) => written,
        // A race on a user or on auth.users failed the whole statement: nothing was written.
        Err(StoreError::Conflict) => vec![false; rows.len()],
        Err(error) => return Err(error.into()),
    };
    for ((index, _, _, result), done) in writes.iter().zip(written) {
        results[*index] = Some(if done {
            *result
        } else {
            apply_one(scope, &states[*index]).await?
        });
    }
    for index in one_by_one {
        results[index] = Some(apply_one(scope, &states[index]).await?);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every state of the page has a result"))
        .collect())
}
