//! Keeps the serve threads' connection counts level.
//!
//! Every thread of [`super::spawn_workers`] accepts on the same listening
//! socket, and a connection stays on the thread that accepted it. Left to
//! the kernel, whichever thread's epoll woke first took a burst of new
//! connections: of wrk's 64, one run put all 64 on one thread, which then
//! served them alone while the other idled (78k against 96k requests/s for a
//! balanced run, and a longer tail). So a thread accepts only while it holds
//! no more connections than the least loaded one; the others wait until that
//! changes. Counts move only when a connection opens or closes, never per
//! request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Open connections per thread.
pub struct Balance {
    open: Vec<AtomicUsize>,
    changed: Notify,
}

impl Balance {
    pub fn new(threads: usize) -> Arc<Balance> {
        Arc::new(Balance {
            open: (0..threads.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            changed: Notify::new(),
        })
    }

    /// Whether thread `me` holds no more connections than any other.
    pub fn may_accept(&self, me: usize) -> bool {
        let mine = self.open[me].load(Ordering::Relaxed);
        self.open
            .iter()
            .all(|other| mine <= other.load(Ordering::Relaxed))
    }

    /// Resolves once thread `me` may accept. The least loaded thread always
    /// may, so some thread is always accepting.
    pub async fn turn(&self, me: usize) {
        loop {
            // Registered before the check, so a change between the check and
            // the await is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.may_accept(me) {
                return;
            }
            changed.await;
        }
    }

    /// Counts a connection accepted by thread `me` until the seat drops.
    pub fn seat(self: &Arc<Self>, me: usize) -> Seat {
        self.open[me].fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
        Seat {
            balance: Arc::clone(self),
            me,
        }
    }

    /// Open connections of thread `me` (tests).
    pub fn open(&self, me: usize) -> usize {
        self.open[me].load(Ordering::Relaxed)
    }
}

/// One open connection of one thread.
pub struct Seat {
    balance: Arc<Balance>,
    me: usize,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.balance.open[self.me].fetch_sub(1, Ordering::Relaxed);
        self.balance.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_the_least_loaded_thread_accepts() {
        let b = Balance::new(2);
        assert!(b.may_accept(0) && b.may_accept(1));
        let s0 = b.seat(0);
        assert!(!b.may_accept(0) && b.may_accept(1));
        let s1 = b.seat(1);
        assert!(b.may_accept(0) && b.may_accept(1));
        drop(s0);
        assert!(b.may_accept(0) && !b.may_accept(1));
        assert_eq!((b.open(0), b.open(1)), (0, 1));
        drop(s1);
        assert_eq!((b.open(0), b.open(1)), (0, 0));
    }

    #[tokio::test]
    async fn a_waiting_thread_resumes_when_the_others_catch_up() {
        let b = Balance::new(2);
        let seat = b.seat(0);
        let waiter = {
            let b = Arc::clone(&b);
            tokio::spawn(async move { b.turn(0).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "thread 0 holds more connections");
        let other = b.seat(1);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("thread 0 resumes once thread 1 has as many")
            .unwrap();
        drop((seat, other));
    }
}
