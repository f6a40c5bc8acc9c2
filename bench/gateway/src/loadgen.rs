//! The load generator behind `rw-loadgen`: open loop without coordinated omission, or one
//! connection back to back.
//!
//! Open loop: a ticker thread emits the scheduled send times `t0 + i/R`; each becomes a task
//! that takes an idle keep-alive connection (or opens one when all are busy, so the pool grows
//! to what the load needs) and sends. Each latency is measured from the *scheduled* time, so a
//! slow server (or a late send) is charged to the requests it delays instead of silently
//! thinning the load — the coordinated omission of closed-loop tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::stats::Summary;

type Sender = SendRequest<Full<Bytes>>;

/// Where to send: `http://host:port/path` (no TLS: the benchmark runs on loopback).
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query.
    pub path: Uri,
}

impl Target {
    /// Parses an `http://` URL.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--url: '{url}' must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("--url: bad port in '{url}'"))?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("--url: no host in '{url}'"));
        }
        let path = path.parse().map_err(|_| format!("--url: bad path in '{url}'"))?;
        Ok(Target {
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            path,
        })
    }
}

/// How to load the target.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// One connection, `n` requests back to back (after `warmup` unmeasured ones).
    Sequential {
        /// Measured requests.
        n: u64,
        /// Unmeasured requests first.
        warmup: u64,
    },
    /// Requests at fixed intervals of `1/rps` for `duration`, after `warmup` at the same rate
    /// (which also grows the connection pool).
    Open {
        /// Target rate.
        rps: f64,
        /// Measured time.
        duration: Duration,
        /// Unmeasured time first.
        warmup: Duration,
    },
}

/// A whole run's parameters.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where.
    pub target: Target,
    /// The method (POST unless told).
    pub method: Method,
    /// The request body (the same for every request).
    pub body: Bytes,
    /// Headers of every request (`host` and `content-type` included).
    pub headers: HeaderMap,
    /// Measure the first body byte too (SSE streams).
    pub stream: bool,
    /// Open loop or sequential.
    pub mode: Mode,
    /// A request not finished this long after its scheduled time counts as `timeout`.
    pub timeout: Duration,
    /// Connections opened before the first request.
    pub initial_connections: usize,
    /// At most this many connections (then requests wait for one, the wait counted).
    pub max_connections: usize,
}

impl Plan {
    /// The header map for `extra` (`name: value` strings) plus `host` and, for a body,
    /// `content-type: application/json` unless given.
    pub fn headers(target: &Target, extra: &[String], has_body: bool) -> Result<HeaderMap, String> {
        let mut h = HeaderMap::new();
        let host = format!("{}:{}", target.host, target.port);
        h.insert(
            HOST,
            HeaderValue::from_str(&host).map_err(|_| format!("bad host '{host}'"))?,
        );
        for e in extra {
            let (k, v) = e
                .split_once(':')
                .ok_or_else(|| format!("-H '{e}': expected 'name: value'"))?;
            let k = HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| format!("-H '{e}': bad header name"))?;
            let v = HeaderValue::from_str(v.trim()).map_err(|_| format!("-H '{e}': bad header value"))?;
            h.append(k, v);
        }
        if has_body && !h.contains_key(CONTENT_TYPE) {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(h)
    }
}

/// What happened to one request.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    status: Option<u16>,
    error: Option<&'static str>,
    /// From the scheduled (open loop) or actual (sequential) send time to the body's end, µs.
    total_us: u64,
    /// To the first body frame, µs.
    ttfb_us: u64,
    /// How late the request left against its schedule (waiting for the runtime or for a
    /// connection), µs.
    lag_us: u64,
    measured: bool,
    done_at: Instant,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// `open` or `sequential`.
    pub mode: &'static str,
    /// The target rate (open loop).
    pub target_rps: Option<f64>,
    /// Measured requests.
    pub count: u64,
    /// 2xx responses among them.
    pub ok: u64,
    /// Non-2xx statuses and transport errors (`connect`, `io`, `body`, `timeout`) by name.
    pub errors: BTreeMap<String, u64>,
    /// Every status seen.
    pub status: BTreeMap<u16, u64>,
    /// Latency to the end of the body, over 2xx responses.
    pub latency: Summary,
    /// Latency to the first body byte (with `stream`).
    pub ttfb: Option<Summary>,
    /// How late requests were sent against the schedule (open loop): a large figure means the
    /// generator itself, not the target, could not keep the rate.
    pub send_lag: Summary,
    /// 2xx responses per second of the measured window (from its scheduled start to the last
    /// response).
    pub achieved_rps: f64,
    /// Most connections open at once.
    pub connections: usize,
    /// The measured window, seconds.
    pub elapsed_s: f64,
}

impl Report {
    /// One JSON line.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(512);
        let _ = write!(s, "{{\"mode\": \"{}\"", self.mode);
        match self.target_rps {
            Some(r) => {
                let _ = write!(s, ", \"target_rps\": {r}");
            }
            None => s.push_str(", \"target_rps\": null"),
        }
        let _ = write!(s, ", \"count\": {}, \"ok\": {}, \"errors\": {{", self.count, self.ok);
        for (i, (k, v)) in self.errors.iter().enumerate() {
            let _ = write!(s, "{}\"{k}\": {v}", if i > 0 { ", " } else { "" });
        }
        s.push_str("}, \"status\": {");
        for (i, (k, v)) in self.status.iter().enumerate() {
            let _ = write!(s, "{}\"{k}\": {v}", if i > 0 { ", " } else { "" });
        }
        let _ = write!(s, "}}, \"latency_us\": {}", self.latency.to_json());
        if let Some(t) = &self.ttfb {
            let _ = write!(s, ", \"ttfb_us\": {}", t.to_json());
        }
        let _ = write!(
            s,
            ", \"send_lag_us\": {}, \"achieved_rps\": {:.1}, \"connections\": {}, \"elapsed_s\": {:.3}}}",
            self.send_lag.to_json(),
            self.achieved_rps,
            self.connections,
            self.elapsed_s
        );
        s
    }
}

struct Pool {
    idle: Mutex<Vec<Sender>>,
    open: AtomicUsize,
    peak: AtomicUsize,
    slots: Semaphore,
}

impl Pool {
    fn take(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
        None
    }

    fn put(&self, s: Sender) {
        if s.is_closed() {
            self.open.fetch_sub(1, Ordering::Relaxed);
        } else {
            // Last in, first out: the warmest connections are reused and the rest stay idle.
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    }

    async fn connect(&self, t: &Target) -> Result<Sender, &'static str> {
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|_| "connect")?;
        // Small requests must leave at once, not wait for the previous response's ACK.
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await.map_err(|_| "connect")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let n = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
        Ok(sender)
    }
}

fn request(plan: &Plan) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(plan.body.clone()));
    *req.method_mut() = plan.method.clone();
    *req.uri_mut() = plan.target.path.clone();
    *req.headers_mut() = plan.headers.clone();
    req
}

/// Sends one request on `sender` and reads the whole response: (status, first body frame).
async fn exchange(sender: &mut Sender, req: Request<Full<Bytes>>) -> Result<(u16, Option<Instant>), &'static str> {
    let resp = sender.send_request(req).await.map_err(|_| "io")?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| "body")?;
        if first.is_none() && frame.is_data() {
            first = Some(Instant::now());
        }
    }
    Ok((status, first))
}

/// One request scheduled at `at`: a connection (idle, new, or waited for), the exchange, the
/// connection back to the pool.
async fn one(pool: Arc<Pool>, plan: Arc<Plan>, at: Instant, measured: bool) -> Outcome {
    let deadline = at + plan.timeout;
    let res = tokio::time::timeout_at(deadline.into(), async {
        let _slot = pool.slots.acquire().await.map_err(|_| "connect")?;
        // A pooled connection the server closed while idle fails before anything is sent:
        // such a failure is retried once on a fresh connection.
        for attempt in 0..2 {
            let mut sender = match pool.take() {
                Some(s) => s,
                None => pool.connect(&plan.target).await?,
            };
            if sender.ready().await.is_err() {
                pool.put(sender);
                if attempt == 0 {
                    continue;
                }
                return Err("io");
            }
            let lag = at.elapsed();
            let r = exchange(&mut sender, request(&plan)).await;
            pool.put(sender);
            return r.map(|(s, f)| (s, f, lag));
        }
        Err("io")
    })
    .await;
    let done_at = Instant::now();
    let us = |t: Instant| t.saturating_duration_since(at).as_micros() as u64;
    match res {
        Ok(Ok((status, first, lag))) => Outcome {
            status: Some(status),
            error: None,
            total_us: us(done_at),
            ttfb_us: first.map_or(us(done_at), us),
            lag_us: lag.as_micros() as u64,
            measured,
            done_at,
        },
        Ok(Err(e)) => failed(e, us(done_at), measured, done_at),
        Err(_) => failed("timeout", us(done_at), measured, done_at),
    }
}

fn failed(e: &'static str, total_us: u64, measured: bool, done_at: Instant) -> Outcome {
    Outcome {
        status: None,
        error: Some(e),
        total_us,
        ttfb_us: total_us,
        lag_us: 0,
        measured,
        done_at,
    }
}

/// Runs `plan` to the end (every request answered or timed out).
pub async fn run(plan: Plan) -> Result<Report, String> {
    let pool = Arc::new(Pool {
        idle: Mutex::new(Vec::new()),
        open: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        slots: Semaphore::new(plan.max_connections.max(1)),
    });
    let mut warm = Vec::new();
    for _ in 0..plan.initial_connections {
        let s = pool
            .connect(&plan.target)
            .await
            .map_err(|_| format!("cannot connect to {}:{}", plan.target.host, plan.target.port))?;
        warm.push(s);
    }
    for s in warm {
        pool.put(s);
    }
    let plan = Arc::new(plan);
    match plan.mode {
        Mode::Sequential { n, warmup } => sequential(pool, plan, n, warmup).await,
        Mode::Open { rps, duration, warmup } => open_loop(pool, plan, rps, duration, warmup).await,
    }
}

async fn sequential(pool: Arc<Pool>, plan: Arc<Plan>, n: u64, warmup: u64) -> Result<Report, String> {
    let mut outcomes = Vec::with_capacity(n as usize);
    let mut start = Instant::now();
    for i in 0..warmup + n {
        if i == warmup {
            start = Instant::now();
        }
        let o = one(pool.clone(), plan.clone(), Instant::now(), i >= warmup).await;
        if o.measured {
            outcomes.push(o);
        }
    }
    let peak = pool.peak.load(Ordering::Relaxed);
    Ok(report("sequential", None, &plan, outcomes, start, peak))
}

async fn open_loop(
    pool: Arc<Pool>,
    plan: Arc<Plan>,
    rps: f64,
    duration: Duration,
    warmup: Duration,
) -> Result<Report, String> {
    if !(rps.is_finite() && rps > 0.0) {
        return Err("--rps must be > 0".into());
    }
    let interval = Duration::from_secs_f64(1.0 / rps);
    let total = ((warmup + duration).as_secs_f64() * rps).round() as u64;
    let t0 = Instant::now() + Duration::from_millis(5);
    let measure_from = t0 + warmup;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    // The ticker is a plain thread: a tokio timer only resolves whole milliseconds, which
    // would send a 2,000 RPS load as pairs every millisecond. `thread::sleep` wakes within
    // ~50-100 µs, and busy-waiting would steal the CPU the mock shares with us.
    let ticker = std::thread::Builder::new()
        .name("rw-loadgen-ticker".into())
        .spawn(move || {
            for i in 0..total {
                let at = t0 + interval.mul_f64(i as f64);
                let now = Instant::now();
                if at > now + Duration::from_micros(20) {
                    std::thread::sleep(at - now);
                }
                if tx.send(at).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the ticker thread: {e}"))?;
    let mut tasks = tokio::task::JoinSet::new();
    let mut outcomes = Vec::with_capacity((duration.as_secs_f64() * rps) as usize + 16);
    let mut keep = |o: Outcome| {
        if o.measured {
            outcomes.push(o);
        }
    };
    while let Some(at) = rx.recv().await {
        tasks.spawn(one(pool.clone(), plan.clone(), at, at >= measure_from));
        while let Some(r) = tasks.try_join_next() {
            if let Ok(o) = r {
                keep(o);
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(o) = r {
            keep(o);
        }
    }
    let _ = ticker.join();
    let peak = pool.peak.load(Ordering::Relaxed);
    Ok(report("open", Some(rps), &plan, outcomes, measure_from, peak))
}

fn report(
    mode: &'static str,
    target_rps: Option<f64>,
    plan: &Plan,
    outcomes: Vec<Outcome>,
    start: Instant,
    connections: usize,
) -> Report {
    let mut errors = BTreeMap::new();
    let mut status = BTreeMap::new();
    let mut lat = Vec::with_capacity(outcomes.len());
    let mut ttfb = Vec::with_capacity(if plan.stream { outcomes.len() } else { 0 });
    let mut lag = Vec::with_capacity(outcomes.len());
    let mut end = start;
    for o in &outcomes {
        end = end.max(o.done_at);
        lag.push(o.lag_us);
        match (o.status, o.error) {
            (Some(s), _) if (200..300).contains(&s) => {
                *status.entry(s).or_insert(0) += 1;
                lat.push(o.total_us);
                if plan.stream {
                    ttfb.push(o.ttfb_us);
                }
            }
            (Some(s), _) => {
                *status.entry(s).or_insert(0) += 1;
                *errors.entry(s.to_string()).or_insert(0) += 1;
            }
            (None, e) => *errors.entry(e.unwrap_or("io").to_string()).or_insert(0) += 1,
        }
    }
    let elapsed = (end - start).as_secs_f64();
    let ok = lat.len() as u64;
    Report {
        mode,
        target_rps,
        count: outcomes.len() as u64,
        ok,
        errors,
        status,
        latency: Summary::of(&mut lat),
        ttfb: plan.stream.then(|| Summary::of(&mut ttfb)),
        send_lag: Summary::of(&mut lag),
        achieved_rps: if elapsed > 0.0 { ok as f64 / elapsed } else { 0.0 },
        connections,
        elapsed_s: elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_headers() {
        let t = Target::parse("http://127.0.0.1:8080/v1/chat/completions").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.path()),
            ("127.0.0.1", 8080, "/v1/chat/completions")
        );
        assert_eq!(Target::parse("http://localhost").unwrap().port, 80);
        assert!(Target::parse("https://x").is_err());
        let h = Plan::headers(&t, &["authorization: Bearer k".into()], true).unwrap();
        assert_eq!(h["authorization"], "Bearer k");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["host"], "127.0.0.1:8080");
        assert!(Plan::headers(&t, &["nocolon".into()], false).is_err());
    }
}
