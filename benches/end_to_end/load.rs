//! The HTTP load: a minimal keep-alive HTTP/1.1 client and the senders that drive `serve`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::events::SignedEvent;
use crate::percentile::percentile;

pub struct LoadResult {
    elapsed: Duration,
    pub latencies_us: Vec<u64>,
    pub statuses: BTreeMap<String, usize>,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// `concurrency` senders, each with its own keep-alive connection, take the next event until
/// none is left; each request is timed from its first byte sent to the last byte of the answer.
///
/// A minimal HTTP/1.1 client (requests built in advance, answers read by `Content-Length`)
/// rather than reqwest: the load generator shares the two cores with `serve` and PostgreSQL,
/// and every cycle it spends is taken from them, so it should cost about what pgbench's own
/// client costs (reqwest and hyper cost about twice as much per request).
pub async fn drive(address: &str, events: Vec<SignedEvent>, concurrency: usize) -> LoadResult {
    let events = Arc::new(events);
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..concurrency {
        let (events, next, address) = (events.clone(), next.clone(), address.to_owned());
        senders.spawn(async move {
            let mut connection = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect to serve");
            connection.set_nodelay(true).expect("nodelay");
            let mut buffer = Vec::with_capacity(4096);
            let mut latencies = Vec::with_capacity(events.len() / concurrency + 1);
            let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(event) = events.get(i) else { break };
                let sent = Instant::now();
                let answer = match exchange(&mut connection, &mut buffer, &event.request).await {
                    Ok((status, body)) => answer_status(status, body),
                    Err(e) => panic!("HTTP exchange failed: {e}"),
                };
                latencies.push(sent.elapsed().as_micros() as u64);
                *statuses.entry(answer).or_default() += 1;
            }
            (latencies, statuses)
        });
    }
    let mut result = LoadResult {
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        statuses: BTreeMap::new(),
    };
    while let Some(joined) = senders.join_next().await {
        let (latencies, statuses) = joined.expect("sender task");
        result.latencies_us.extend(latencies);
        for (status, count) in statuses {
            *result.statuses.entry(status).or_default() += count;
        }
    }
    result.elapsed = started.elapsed();
    result.latencies_us.sort_unstable();
    result
}

/// Writes one request, reads one answer (status line, headers, `Content-Length` bytes of body)
/// on a keep-alive connection. Returns the status and the body.
async fn exchange<'b>(
    connection: &mut tokio::net::TcpStream,
    buffer: &'b mut Vec<u8>,
    request: &[u8],
) -> std::io::Result<(u16, &'b [u8])> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    connection.write_all(request).await?;
    buffer.clear();
    let mut head_end = None;
    loop {
        if head_end.is_none() {
            head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n");
        }
        if let Some(end) = head_end {
            let head = std::str::from_utf8(&buffer[..end]).map_err(|_| bad("header not UTF-8"))?;
            let status = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("no status"))?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or_else(|| bad("no Content-Length"))?;
            let total = end + 4 + length;
            if buffer.len() >= total {
                return Ok((status, &buffer[end + 4..total]));
            }
        }
        if connection.read_buf(buffer).await? == 0 {
            return Err(bad("connection closed"));
        }
    }
}

/// `processed`, `duplicate`, … for a 200; `HTTP 503 unavailable` and the like otherwise.
fn answer_status(http: u16, body: &[u8]) -> String {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (http, &parsed["status"], &parsed["error"]["code"]) {
        (200, Value::String(status), _) => status.clone(),
        (_, _, Value::String(code)) => format!("HTTP {http} {code}"),
        _ => format!("HTTP {http}"),
    }
}
