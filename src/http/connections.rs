//! How many client connections `serve` keeps open at once: below what the process can hold
//! (`RLIMIT_NOFILE`), with room left for its own sockets. Past the cap, actix stops accepting
//! and new connections wait in the kernel's listen backlog until one closes (the request
//! deadlines see to it that one does) — instead of `accept` failing with "Too many open files"
//! while the database and Stripe need descriptors too.
//!
//! And each connection is watched between its requests: actix' head deadline
//! (`client_request_timeout`) covers a connection's first request only, so a client could send
//! one quick request and then trickle the next one's head for ever. A connection with no
//! request in flight for longer than the keep-alive wait and a head's deadline together is
//! shut down.

use std::cell::Cell;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};

/// Descriptors kept for what is not a client connection: standard streams, each worker's
/// runtime (epoll, event fds), the log, the local database's pipes, the metrics listener, and
/// outgoing connections to Stripe and the JWKS.
const RESERVED: u64 = 128;
/// The database pools beside the serving one (the profile push's, catch-up's, the webhook
/// path's own), counted on top of `DATABASE_MAX_CONNECTIONS`.
const OTHER_POOLS: u64 = 16;
/// actix-web's own default per worker.
const MAX_PER_WORKER: usize = 25_000;
/// At most one "cap reached" warning per this.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The cap, and the count of connections open now.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionCap {
    /// `RLIMIT_NOFILE` (soft) in effect.
    pub open_files_limit: u64,
    /// Per HTTP worker (actix counts per worker).
    pub per_worker: usize,
    /// All workers together.
    pub total: usize,
    open: Arc<Counter>,
}

#[derive(Debug, Default)]
struct Counter {
    open: AtomicUsize,
    /// Seconds since the epoch of the last warning.
    warned_at: AtomicU64,
}

/// Held in a connection's extensions (dropped with the connection, on its worker's thread):
/// counts it open until it closes, and tells its watchdog whether a request is in flight.
struct OpenConnection {
    counter: Arc<Counter>,
    watch: Option<Rc<Watch>>,
}

/// What the watchdog of one connection reads; only ever touched on the connection's worker
/// thread.
struct Watch {
    closed: Cell<bool>,
    in_flight: Cell<u32>,
    /// Since when no request has been in flight (the connection's start, at first).
    idle_since: Cell<Instant>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.counter.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(watch) = &self.watch {
            watch.closed.set(true);
        }
    }
}

impl ConnectionCap {
    /// The cap for this process: its open-files limit (raised to the hard limit first, as the
    /// Go runtime does) less what the database pools and the service's own sockets need.
    pub(crate) fn for_process(workers: usize, database_connections: u32) -> Self {
        Self::within(raise_open_files_limit(), workers, database_connections)
    }

    fn within(limit: u64, workers: usize, database_connections: u32) -> Self {
        let workers = workers.max(1);
        let reserved = RESERVED + OTHER_POOLS + u64::from(database_connections);
        // A limit too low to leave room still gets a quarter of it: better than nothing.
        let room = limit.saturating_sub(reserved).max(limit / 4);
        let per_worker = usize::try_from(room / workers as u64)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_PER_WORKER);
        Self {
            open_files_limit: limit,
            per_worker,
            total: per_worker * workers,
            open: Arc::default(),
        }
    }

    /// For `HttpServer::on_connect`: counts each connection while it is open, warns (at most
    /// every 10 s) when the cap is reached, and starts its watchdog, which shuts it down once
    /// no request has been in flight for `idle_limit` (the keep-alive wait and a head's
    /// deadline): the next request's head is then trickling in. [`track_requests`] tells it.
    pub(crate) fn on_connect(
        &self,
        idle_limit: Duration,
    ) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
        let counter = self.open.clone();
        let (total, limit) = (self.total, self.open_files_limit);
        move |io, extensions| {
            let open = counter.open.fetch_add(1, Ordering::Relaxed) + 1;
            let watch = io
                .downcast_ref::<actix_web::rt::net::TcpStream>()
                .map(|stream| {
                    let watch = Rc::new(Watch {
                        closed: Cell::new(false),
                        in_flight: Cell::new(0),
                        idle_since: Cell::new(Instant::now()),
                    });
                    actix_web::rt::spawn(watchdog(stream.as_raw_fd(), watch.clone(), idle_limit));
                    watch
                });
            extensions.insert(OpenConnection {
                counter: counter.clone(),
                watch,
            });
            if open >= total {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let last = counter.warned_at.load(Ordering::Relaxed);
                if now >= last + WARN_EVERY.as_secs()
                    && counter
                        .warned_at
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        open,
                        cap = total,
                        open_files_limit = limit,
                        "open client connections reached the cap: new ones wait in the listen \
                         backlog until one closes (raise the open-files limit, ulimit -n, for \
                         more)"
                    );
                }
            }
        }
    }
}

/// For `App::wrap_fn`: tells the connection's watchdog when a request is in flight.
pub(crate) fn track_requests<S>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse, actix_web::Error>> + use<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
{
    let watch = request
        .request()
        .conn_data::<OpenConnection>()
        .and_then(|connection| connection.watch.clone());
    if let Some(watch) = &watch {
        watch.in_flight.set(watch.in_flight.get() + 1);
    }
    let response = service.call(request);
    async move {
        let response = response.await;
        if let Some(watch) = watch {
            watch.in_flight.set(watch.in_flight.get().saturating_sub(1));
            watch.idle_since.set(Instant::now());
        }
        response
    }
}

/// Shuts the connection down once it has had no request in flight for `idle_limit`. Runs on
/// the connection's worker thread, like the connection itself: `closed` is set in the same
/// turn as the descriptor is closed, so `fd` is never another connection's.
async fn watchdog(fd: RawFd, watch: Rc<Watch>, idle_limit: Duration) {
    loop {
        if watch.closed.get() {
            return;
        }
        let now = Instant::now();
        let wake = if watch.in_flight.get() > 0 {
            // The handlers' own deadlines bound a request; look again later.
            now + idle_limit
        } else {
            watch.idle_since.get() + idle_limit
        };
        if wake <= now {
            tracing::debug!("closing a connection idle between requests past the deadlines");
            // SAFETY: `fd` is this connection's open socket (not `closed`, see above); shutdown
            // ends its traffic and actix then closes and drops it.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            return;
        }
        actix_web::rt::time::sleep_until(wake.into()).await;
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (many systems start processes at a soft
/// 1024 with a far higher hard limit); the soft limit in effect.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a rlimit of our own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            // Unknown: assume the common default.
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    // RLIM_INFINITY is u64::MAX: the per-worker clamp bounds it.
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_database_and_the_services_own_sockets() {
        let cap = ConnectionCap::within(256, 2, 10);
        assert_eq!(cap.per_worker, (256 - 128 - 16 - 10) / 2);
        assert_eq!(cap.total, cap.per_worker * 2);
        assert!(cap.total as u64 + 128 + 16 + 10 <= 256);
    }

    #[test]
    fn a_tiny_limit_still_serves_and_a_huge_one_is_bounded() {
        assert_eq!(ConnectionCap::within(64, 2, 10).total, 16);
        assert_eq!(ConnectionCap::within(0, 4, 10).per_worker, 1);
        assert_eq!(
            ConnectionCap::within(u64::MAX, 2, 10).per_worker,
            MAX_PER_WORKER
        );
    }
}
