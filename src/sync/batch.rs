//! Group commit of webhook events.
//!
//! Each event costs the database a few statements whose fixed part (a round trip, parse/bind,
//! a commit and its WAL flush) outweighs the rows they write. So a request does not apply its
//! event itself: it hands it to a writer and waits for the outcome. A writer takes every event
//! waiting at that moment and applies them together: one snapshot read, `decide()` for each,
//! one write that keeps each event's guard (see `sync::apply::apply_events`). Each event is
//! planned once ([`EventPlan`]), and that plan is what the batch carries to the write. A batch is as
//! large as the load makes it: one event when requests come one at a time, dozens under
//! concurrency; a writer waits a moment for the senders it has just answered
//! ([`next_batch::GATHER_FOR`]), so that a batch takes all of them, not half.
//!
//! Whatever the batch cannot settle is applied on its own, in arrival order, by the single
//! event path ([`super::apply_event`]): an event whose guard no longer held at the write (a
//! concurrent change on another replica), a second event of a customer or user already in the
//! batch, a subscription event (a transaction of its own, see `sync::subscriptions`), and every
//! event of a batch whose write the database refused for its data or for a
//! race. A batch that failed because the database is unavailable wrote nothing (the write is
//! one statement) and answers every one of its events with the error: 503, Stripe retries.

mod next_batch;

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::apply::{self, Settled};
use super::event::{EventPlan, apply_event};
use super::{Outcome, SyncError, SyncSettings, subscriptions};
use crate::domain::EventId;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::pool::{self, PING_IF_IDLE_FOR};
use crate::store::session::EventScope;
use crate::stripe::event::{EventObject, StripeEvent};
use next_batch::NextBatch;

/// A generic plan is made once, from the statistics of that moment, and PostgreSQL makes a
/// new one only when the table is next analyzed; a table that grows fast from empty (a new
/// deployment's ledger) would be scanned whole until then. Planning again this often keeps the
/// plans in step with the tables' actual size (the planner reads their current size), for one
/// round trip and a few plans.
const REPLAN_EVERY: Duration = Duration::from_secs(5);
/// Events waiting for a writer at most; a request beyond waits to enqueue (within its deadline).
const QUEUE_CAPACITY: usize = 4096;

/// Hands verified events to a writer and returns their outcomes.
#[derive(Debug, Clone)]
pub struct EventWriter {
    queue: mpsc::Sender<Job>,
}

/// One event waiting for a writer, and who waits for its outcome.
struct Job {
    event: OwnedEvent,
    waiter: Waiter,
}

/// Where an event's outcome goes, and until when.
struct Waiter {
    reply: Reply,
    /// When the request stops waiting: the event is then left unwritten, so that an event
    /// answered 503 is never recorded behind the sender's back.
    deadline: Instant,
}

/// A [`StripeEvent`] owned while it waits for a writer: its text, which the event borrows
/// again once the batch is taken, and the rest, which it takes back.
struct OwnedEvent {
    text: EventText,
    parts: EventParts,
}

struct EventText {
    event_type: String,
    api_version: Option<String>,
    raw: String,
}

struct EventParts {
    id: EventId,
    object: EventObject,
    created: i64,
    livemode: bool,
    payload_sanitized: bool,
}

impl OwnedEvent {
    fn of(event: &StripeEvent<'_>) -> Self {
        Self {
            text: EventText {
                event_type: event.event_type.to_owned(),
                api_version: event.api_version.map(str::to_owned),
                raw: event.raw.to_owned(),
            },
            parts: EventParts {
                id: event.id.clone(),
                object: event.object.clone(),
                created: event.created,
                livemode: event.livemode,
                payload_sanitized: event.payload_sanitized,
            },
        }
    }
}

impl EventParts {
    /// The event again, over its text.
    fn with(self, text: &EventText) -> StripeEvent<'_> {
        StripeEvent {
            id: self.id,
            event_type: &text.event_type,
            created: self.created,
            livemode: self.livemode,
            api_version: text.api_version.as_deref(),
            object: self.object,
            raw: &text.raw,
            payload_sanitized: self.payload_sanitized,
        }
    }
}

impl EventWriter {
    /// Starts the writer on the current runtime; it stops when the last handle is dropped.
    /// `serve` starts one per HTTP worker, on the worker's own thread: a request's event is
    /// then written by a task of the same thread, on a connection driven by it. One writer:
    /// the events that arrive while it writes make its next batch, and the workers' writers
    /// overlap each other's commits. (Measured at 16 and 32 senders on 2 cores: one writer per
    /// worker made batches a third larger than two did, cost PostgreSQL less per event and
    /// served more events per second in 5 of 6 paired runs.)
    pub fn start(pool: PgPool, settings: SyncSettings, metrics: Arc<Metrics>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Writer {
            pool,
            settings,
            metrics,
        };
        tokio::spawn(writer.run(receiver));
        Self { queue }
    }

    /// Applies one verified event and records it in the ledger, exactly once: the outcome
    /// comes back once the write that recorded it has committed. Past `deadline` nothing of
    /// the event is written any more, and the answer is [`SyncError::DeadlinePassed`].
    pub async fn apply(
        &self,
        event: &StripeEvent<'_>,
        deadline: Instant,
    ) -> Result<Outcome, SyncError> {
        let (reply, outcome) = oneshot::channel();
        let job = Job {
            event: OwnedEvent::of(event),
            waiter: Waiter { reply, deadline },
        };
        let queued = tokio::time::timeout_at(deadline, self.queue.send(job)).await;
        match queued {
            Err(_) => return Err(SyncError::DeadlinePassed),
            Ok(Err(_)) => return Err(SyncError::WriterStopped),
            Ok(Ok(())) => {}
        }
        outcome.await.map_err(|_| SyncError::WriterStopped)?
    }
}

struct Writer {
    pool: PgPool,
    settings: SyncSettings,
    metrics: Arc<Metrics>,
}

type Reply = oneshot::Sender<Result<Outcome, SyncError>>;

/// A connection a writer keeps between batches (session mode).
struct Held {
    connection: PgConnection,
    last_used: Instant,
    /// When its plans were last discarded.
    planned: Instant,
}

impl Writer {
    async fn run(self, mut receiver: mpsc::Receiver<Job>) {
        let mut held = None;
        let mut next = NextBatch::default();
        while let Some(jobs) = next.take(&mut receiver).await {
            let taken = jobs.len();
            self.apply_jobs(jobs, &mut held).await;
            next.answered(taken, &receiver);
        }
    }

    async fn apply_jobs(&self, jobs: Vec<Job>, held: &mut Option<Held>) {
        let now = Instant::now();
        let (jobs, late): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|job| job.waiter.deadline > now && !job.waiter.reply.is_closed());
        for job in late {
            let _ = job.waiter.reply.send(Err(SyncError::DeadlinePassed));
        }
        let Some(deadline) = jobs.iter().map(|job| job.waiter.deadline).min() else {
            return;
        };
        self.metrics.batches.batch(jobs.len());
        let (owned, waiters): (Vec<OwnedEvent>, Vec<Waiter>) =
            jobs.into_iter().map(|job| (job.event, job.waiter)).unzip();
        let (texts, parts): (Vec<EventText>, Vec<EventParts>) = owned
            .into_iter()
            .map(|event| (event.text, event.parts))
            .unzip();
        let events: Vec<StripeEvent<'_>> = parts
            .into_iter()
            .zip(&texts)
            .map(|(parts, text)| parts.with(text))
            .collect();

        // Dropped at the first deadline: behind a transaction pooler the batch's transaction
        // rolls back; otherwise a write already sent may still commit, and Stripe's retry of an
        // event answered 503 is then answered `duplicate`, as before group commit.
        let together = tokio::time::timeout_at(deadline, self.apply_batch(&events, held)).await;
        let settled = match together.unwrap_or(Err(BatchFailed::DeadlinePassed)) {
            Ok(settled) => settled,
            Err(BatchFailed::DeadlinePassed) => {
                tracing::error!(
                    events = events.len(),
                    "batch not written within its deadline"
                );
                for waiter in waiters {
                    let _ = waiter.reply.send(Err(SyncError::DeadlinePassed));
                }
                return;
            }
            Err(BatchFailed::Unavailable(error)) => {
                tracing::error!(error = %error, events = events.len(), "batch not written");
                for waiter in waiters {
                    let _ = waiter
                        .reply
                        .send(Err(SyncError::BatchUnavailable(error.to_string())));
                }
                return;
            }
            Err(BatchFailed::OneByOne(error)) => {
                tracing::debug!(error = %error, "batch refused; applying its events one by one");
                vec![None; events.len()]
            }
        };
        for ((event, waiter), outcome) in events.iter().zip(waiters).zip(settled) {
            let outcome = match outcome {
                Some(outcome) => Ok(outcome),
                None => {
                    self.metrics.batches.applied_one_by_one();
                    let alone = apply_event(&self.pool, &self.settings, event);
                    tokio::time::timeout_at(waiter.deadline, alone)
                        .await
                        .unwrap_or(Err(SyncError::DeadlinePassed))
                }
            };
            let _ = waiter.reply.send(outcome);
        }
    }

    /// Applies what the batch can settle together; `None` for an event left to the single path
    /// (see `apply::apply_events`).
    async fn apply_batch(
        &self,
        events: &[StripeEvent<'_>],
        held: &mut Option<Held>,
    ) -> Result<Vec<Option<Outcome>>, BatchFailed> {
        let plans: Vec<EventPlan<'_>> = events
            .iter()
            .map(|event| EventPlan::of(&self.settings, event))
            .collect();
        let alone = |plan: &EventPlan<'_>| matches!(plan, EventPlan::Subscription { .. });
        if plans.iter().all(alone) {
            // Nothing for the batch's statements: no scope, no round trip.
            return Ok(vec![None; plans.len()]);
        }
        if !self.settings.connection.mode.keeps_sessions() {
            // Behind a transaction pooler: one transaction per batch, its connection back to
            // the pool at the end (the pooler multiplexes them anyway).
            let mut scope = EventScope::begin(&self.pool, self.settings.connection).await?;
            let settled = apply::apply_events(&mut scope, &plans).await?;
            let linked = linked_owners(&plans, &settled);
            subscriptions::linked::recompute_for(&mut scope, &self.settings, &linked).await;
            scope.commit().await?;
            return Ok(settled.outcomes);
        }
        let mut connection = self.connection(held.take()).await?;
        let mut scope = EventScope::within(&mut connection.connection, self.settings.connection);
        let applied = apply::apply_events(&mut scope, &plans).await;
        if let Ok(settled) = &applied {
            let linked = linked_owners(&plans, settled);
            subscriptions::linked::recompute_for(&mut scope, &self.settings, &linked).await;
        }
        // A connection the database dropped is not kept: the next batch opens another.
        if !matches!(applied, Err(StoreError::Unavailable(_))) {
            connection.last_used = Instant::now();
            *held = Some(connection);
        }
        Ok(applied?.outcomes)
    }

    /// The writer's own connection ([`pool::writer_connection`]), kept from batch to batch: a
    /// connection that goes back to sqlx's pool costs a round trip (its ping) every time, once
    /// per batch. As the pool does for its own, a connection idle longer than
    /// [`PING_IF_IDLE_FOR`] is pinged first, so that one a database restart broke meanwhile
    /// is replaced rather than failing a batch.
    async fn connection(&self, held: Option<Held>) -> Result<Held, StoreError> {
        if let Some(mut held) = held
            && (held.last_used.elapsed() <= PING_IF_IDLE_FOR
                || held.connection.ping().await.is_ok())
        {
            if held.planned.elapsed() > REPLAN_EVERY {
                // Every cached plan of the session, the statements' and those of the functions
                // they call, is made again at its next use.
                sqlx::raw_sql("discard plans")
                    .execute(&mut held.connection)
                    .await?;
                held.planned = Instant::now();
            }
            return Ok(held);
        }
        // The batch statements take their rows as arrays. On its own, PostgreSQL plans them
        // afresh at every execution (a plan for the arrays' actual lengths looks cheaper than
        // the generic one), which costs more than the batch's writes at one event per batch;
        // the generic plans are the same index lookups: the connection asks for those.
        let connection =
            pool::writer_connection(&self.pool, self.settings.connection.statement_timeout).await?;
        Ok(Held {
            connection,
            last_used: Instant::now(),
            planned: Instant::now(),
        })
    }
}

/// Why a batch settled nothing.
enum BatchFailed {
    /// The first of its events' deadlines passed: nothing of it is written.
    DeadlinePassed,
    /// The database is unavailable: every event of the batch fails (503).
    Unavailable(StoreError),
    /// A race or a refusal of the data: each event is applied on its own.
    OneByOne(StoreError),
}

impl From<StoreError> for BatchFailed {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::Unavailable(error),
            StoreError::Duplicate | StoreError::Conflict | StoreError::Rejected { .. } => {
                Self::OneByOne(error)
            }
        }
    }
}

/// The customers of the batch's events that name an owner and whose write may give it a tier
/// (see `subscriptions::linked`): the processed ones when the batch's write found subscriptions
/// kept for a customer it wrote, and the redelivered ones.
fn linked_owners<'a>(plans: &'a [EventPlan<'_>], settled: &Settled) -> Vec<&'a str> {
    let may_give_a_tier = |outcome: Outcome| match outcome {
        Outcome::Processed => settled.subscriptions_kept,
        outcome => subscriptions::linked::may_give_a_tier(outcome),
    };
    plans
        .iter()
        .zip(&settled.outcomes)
        .filter(|(_, outcome)| outcome.is_some_and(may_give_a_tier))
        .filter_map(|(plan, _)| match plan {
            EventPlan::Customer(applying) => {
                subscriptions::linked::names_an_owner(applying.state())
            }
            _ => None,
        })
        .collect()
}
