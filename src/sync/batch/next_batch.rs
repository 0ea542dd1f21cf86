//! How a webhook writer takes its next batch from its queue.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// Events one batch takes at most; the statements' arrays stay a few hundred KB.
pub(super) const MAX_BATCH: usize = 64;

/// How long a writer waits for more events when fewer are queued than it had pending when it
/// answered its last batch (that batch and those that queued behind it).
///
/// Why: senders that wait for their answer before sending again (each connection carries one
/// request at a time, as a load test or a replay does) otherwise split into two cohorts, one
/// in the batch being written and one queued behind it, and every batch carries half of them.
/// The senders just answered send again within a fraction of a millisecond; waiting for them
/// makes one batch of all, and the database's cost per batch (executor start-up, constraint
/// set-up, commit and WAL flush) is shared by twice as many events.
///
/// A writer that had one event pending (one sender) never waits. Otherwise the wait ends as
/// soon as the expected number is queued, at the latest at the runtime timer's first tick
/// after this (its resolution is 1 ms): nothing next to a request's deadline.
pub(super) const GATHER_FOR: Duration = Duration::from_micros(500);

/// What a writer expects of its next batch.
#[derive(Debug)]
pub(super) struct NextBatch {
    /// Events pending when the last batch was answered: the batch and those queued behind it.
    pending_at_answer: usize,
}

impl Default for NextBatch {
    fn default() -> Self {
        Self {
            pending_at_answer: 1,
        }
    }
}

impl NextBatch {
    /// Waits for an event and takes every one queued behind it; when that is fewer than were
    /// pending when the last batch was answered, waits up to [`GATHER_FOR`] for the rest.
    /// `None`: the queue is closed and empty.
    pub(super) async fn take<T>(&self, receiver: &mut mpsc::Receiver<T>) -> Option<Vec<T>> {
        let mut batch = vec![receiver.recv().await?];
        take_queued(receiver, &mut batch);
        let expected = self.pending_at_answer.min(MAX_BATCH);
        let until = Instant::now() + GATHER_FOR;
        while batch.len() < expected {
            match tokio::time::timeout_at(until, receiver.recv()).await {
                Ok(Some(item)) => {
                    batch.push(item);
                    take_queued(receiver, &mut batch);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Notes that a batch of `taken` events was written and answered (whatever the outcome).
    /// Call it before the writer's task yields: the queue then holds what arrived during the
    /// write, and none of the senders just answered can have sent again yet.
    pub(super) fn answered<T>(&mut self, taken: usize, receiver: &mpsc::Receiver<T>) {
        self.pending_at_answer = taken + receiver.len();
    }
}

/// Adds to `batch` what is queued now, up to [`MAX_BATCH`] in all.
fn take_queued<T>(receiver: &mut mpsc::Receiver<T>, batch: &mut Vec<T>) {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    async fn queue_of(
        items: std::ops::Range<usize>,
    ) -> (mpsc::Sender<usize>, mpsc::Receiver<usize>) {
        let (sender, receiver) = mpsc::channel(1024);
        for item in items {
            sender.send(item).await.unwrap();
        }
        (sender, receiver)
    }

    #[tokio::test]
    async fn a_batch_takes_every_event_already_queued_without_waiting() {
        let (_sender, mut receiver) = queue_of(0..5).await;
        let batch = NextBatch::default().take(&mut receiver).now_or_never();
        assert_eq!(batch, Some(Some(vec![0, 1, 2, 3, 4])));
    }

    #[tokio::test]
    async fn a_writer_that_had_one_event_pending_never_waits_for_a_second() {
        let (sender, mut receiver) = queue_of(0..0).await;
        let mut next = NextBatch::default();
        next.answered(1, &receiver);
        sender.send(7).await.unwrap();
        assert_eq!(next.take(&mut receiver).now_or_never(), Some(Some(vec![7])));
    }

    #[tokio::test]
    async fn a_batch_waits_for_as_many_events_as_were_pending_when_the_last_was_answered() {
        // A batch of 3 committed while a fourth event queued behind it: 4 pending.
        let (sender, mut receiver) = queue_of(0..1).await;
        let mut next = NextBatch::default();
        next.answered(3, &receiver);
        // The three senders just answered send again once the writer waits.
        let resend = tokio::spawn(async move {
            for item in 1..4 {
                sender.send(item).await.unwrap();
            }
            sender
        });
        let batch = next.take(&mut receiver).await;
        assert_eq!(batch, Some(vec![0, 1, 2, 3]));
        drop(resend.await.unwrap());
    }

    #[tokio::test]
    async fn a_batch_waits_gather_for_then_goes_without_the_events_that_did_not_come() {
        let (_sender, mut receiver) = queue_of(0..1).await;
        let mut next = NextBatch::default();
        next.answered(8, &receiver);
        let started = Instant::now();
        let batch = tokio::time::timeout(Duration::from_secs(5), next.take(&mut receiver))
            .await
            .expect("the wait ends");
        assert_eq!(batch, Some(vec![0]));
        assert!(started.elapsed() >= GATHER_FOR);
    }

    #[tokio::test]
    async fn a_batch_never_takes_more_than_max_batch_events() {
        let (_sender, mut receiver) = queue_of(0..MAX_BATCH + 10).await;
        let mut next = NextBatch::default();
        next.answered(MAX_BATCH + 10, &receiver);
        let batch = next.take(&mut receiver).await.unwrap();
        assert_eq!(batch, (0..MAX_BATCH).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_closed_queue_ends_the_wait_and_then_the_writer() {
        let (sender, mut receiver) = queue_of(0..2).await;
        let mut next = NextBatch::default();
        next.answered(6, &receiver);
        drop(sender);
        assert_eq!(
            next.take(&mut receiver).now_or_never(),
            Some(Some(vec![0, 1]))
        );
        assert_eq!(next.take(&mut receiver).now_or_never(), Some(None));
    }
}
