//! One creation per user at a time within this process, before the database's lock: the
//! callers for one user (20 clicks on "Subscribe") wait here in memory, not each holding a
//! pooled connection while blocked on the advisory lock, so they cannot drain the pool that
//! webhooks need.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

#[derive(Debug, Default)]
pub(crate) struct UserLocks {
    locks: Mutex<HashMap<Uuid, Weak<tokio::sync::Mutex<()>>>>,
}

impl UserLocks {
    pub(crate) async fn lock(&self, user_id: Uuid) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Entries of users nobody waits for any more: the map stays as small as the
            // number of users being served right now.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(&user_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(user_id, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_user_waits_for_itself_and_never_for_another() {
        let locks = UserLocks::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let held = locks.lock(a).await;
        let other = tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock(b));
        assert!(other.await.is_ok(), "another user is not blocked");
        let same = tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock(a));
        assert!(same.await.is_err(), "the same user waits");
        drop(held);
        let _again = locks.lock(a).await;
        assert_eq!(locks.locks.lock().unwrap().len(), 1, "b's entry is gone");
    }
}
