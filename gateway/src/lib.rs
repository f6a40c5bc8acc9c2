//! `ratewise serve`: an OpenAI- and Anthropic-compatible LLM gateway with the ratewise engine
//! deciding every call.
//!
//! A request flows through:
//!
//! 1. `routes`: authentication (virtual keys, stored as SHA-256), the body limit, the
//!    capability (the body's `model`), the lane and wait budget, the token estimates.
//! 2. `proxy`: the attempt loop — a permit from the engine (at once, else waiting in the lane
//!    without blocking a worker), the upstream call with the deployment's model, failover on
//!    429/529/5xx/timeouts before the first byte reached the client, and a guard that settles
//!    every permit exactly once (a client that goes away settles it `interrupted`).
//! 3. `translate` and `relay`: OpenAI chat completions ↔ Anthropic messages, both ways, JSON and
//!    SSE; the original bytes are forwarded when nothing must change.
//! 4. `upstream`: one pooled HTTP client (rustls, HTTP/1.1 and HTTP/2, `TCP_NODELAY`).
//!
//! `config` reads the one JSON file (the engine's configuration plus a `gateway` object),
//! `metrics` exposes Prometheus metrics with bounded labels, `reply` shapes the gateway's own
//! answers. No lock is held across a network call.
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! let config = ratewise_gateway::ServeConfig::from_file("gateway.json".as_ref()).map_err(|e| e.to_string())?;
//! let running = ratewise_gateway::start(config, None).await?;
//! println!("listening on {}", running.addr);
//! running.wait().await;
//! # Ok(()) }
//! ```

mod alerts;
mod answers;
mod budgets;
mod busy;
mod cache;
pub mod config;
mod dashboard;
mod degraded;
mod ledger;
mod metrics;
pub mod prices;
mod proxy;
mod relay;
mod reply;
pub mod reports;
mod routes;
mod sse;
mod state;
pub mod translate;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use ratewise::Engine;
use serde_json::Value;
use tokio::sync::watch;

pub use config::ServeConfig;
use state::{Live, State};

/// A gateway that is serving.
pub struct Running {
    /// The bound address (with the port chosen when `listen` said 0).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
    state: Arc<State>,
}

impl Running {
    /// Stops accepting, lets calls in flight finish (up to `shutdown_grace_ms`), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
        self.state.flush_ledger().await;
    }

    /// Waits until the server stops (SIGTERM / SIGINT when [`start`] was given signals).
    pub async fn wait(self) {
        let _ = self.done.await;
        self.state.flush_ledger().await;
    }

    /// The engine inside.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.state.engine
    }
}

/// Starts serving `config`. With `reload_from`, SIGHUP re-reads that file and applies it (a bad
/// file is refused, its errors logged, and the old configuration keeps serving), and SIGTERM /
/// SIGINT shut down gracefully.
pub async fn start(config: ServeConfig, reload_from: Option<PathBuf>) -> Result<Running, String> {
    let engine = Arc::new(Engine::new(config.engine.clone()).map_err(|e| e.to_string())?);
    let gw = &config.gateway;
    let client = upstream::Client::new(gw.connect_timeout_ms, gw.read_timeout_ms)?;
    let budgets = match &config.budgets {
        Some((_, c)) => {
            let keys = gw
                .keys
                .values()
                .filter(|k| !k.quotas.is_null())
                .map(|k| k.name.clone())
                .collect();
            Some(budgets::Budgets::new(c.clone(), keys).map_err(|e| format!("key budgets: {e}"))?)
        }
        None => None,
    };
    let cache = cache::Cache::new(&gw.cache).await?;
    // Connecting is blocking, once, at start: a wrong URL or an unreachable database stops the
    // start here, with the reason (never the password).
    let books = match &gw.ledger {
        Some(l) => {
            // The PostgreSQL client blocks (it runs a runtime of its own): off the async worker.
            let config = l.config.clone();
            let b = tokio::task::spawn_blocking(move || ledger::Books::open(&config))
                .await
                .map_err(|e| format!("gateway.ledger: {e}"))?
                .map_err(|e| format!("gateway.ledger: {e}"))?;
            tracing::info!(url = %b.url(), "ledger open");
            Some(b)
        }
        None => None,
    };
    let metrics = metrics::Metrics::new();
    let alerts = match &gw.alerts {
        Some(a) => Some(alerts::Alerts::start(a.clone(), metrics.alerts.clone())?),
        None => None,
    };
    let state = Arc::new(State {
        alerts,
        cache,
        books,
        budgets,
        shared: engine.is_shared(),
        engine,
        live: ArcSwap::from_pointee(Live::new(&config)),
        client,
        metrics,
        draining: AtomicBool::new(false),
        busy: busy::BusyPoll::start(Duration::from_micros(gw.busy_poll_us)),
    });
    if let Some(a) = &gw.alerts {
        if let Some(rule) = &a.availability {
            tokio::spawn(alerts::watch_availability(Arc::downgrade(&state), rule.clone()));
        }
        if let (Some(share), Some(_)) = (a.budget_share, &state.budgets) {
            tokio::spawn(alerts::watch_budgets(Arc::downgrade(&state), share));
        }
    }
    let listener = tokio::net::TcpListener::bind(gw.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", gw.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, mut stopped) = watch::channel(false);
    let app = routes::router(state.clone());
    let grace = Duration::from_millis(gw.shutdown_grace_ms);
    let signals = reload_from.is_some();
    let server_state = state.clone();
    let stop_tx = stop.clone();
    let done = tokio::spawn(async move {
        if signals {
            tokio::spawn(watch_signals(server_state.clone(), reload_from, stop_tx));
        }
        let mut drained = stopped.clone();
        let serve = axum::serve(
            axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            app,
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        let server_state2 = server_state.clone();
        tokio::select! {
            r = serve => if let Err(e) = r { tracing::error!(error = %e, "server failed") },
            () = async move {
                let _ = drained.wait_for(|s| *s).await;
                server_state2.draining.store(true, Ordering::Release);
                tokio::time::sleep(grace).await;
            } => tracing::warn!("shutdown grace period over: closing calls still in flight"),
        }
    });
    Ok(Running {
        addr,
        stop,
        done,
        state,
    })
}

#[cfg(unix)]
async fn watch_signals(state: Arc<State>, path: Option<PathBuf>, stop: watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => if let Some(p) = &path { reload(&state, p) },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: draining calls in flight");
    state.draining.store(true, Ordering::Release);
    let _ = stop.send(true);
}

#[cfg(not(unix))]
async fn watch_signals(state: Arc<State>, _path: Option<PathBuf>, stop: watch::Sender<bool>) {
    let _ = tokio::signal::ctrl_c().await;
    state.draining.store(true, Ordering::Release);
    let _ = stop.send(true);
}

/// Applies the file at `path` through the engine's run-time upserts. Nothing changes when it
/// does not validate, or when it changes what only a restart can (the lanes, scoring, health,
/// store, permit TTL, rate constant; the listen address, upstream timeouts, grace period, busy
/// polling; key budgets where none existed).
fn reload(state: &State, path: &std::path::Path) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return tracing::error!(error = %e, "reload refused: cannot read the configuration"),
    };
    let config = match ServeConfig::from_json_at(&text, path.parent()) {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "reload refused: the old configuration keeps serving"),
    };
    let fixed = needs_restart(state, &config);
    if !fixed.is_empty() {
        return tracing::error!(
            fields = %fixed.join(", "),
            "reload refused: these cannot change at run time (restart); the old configuration keeps serving"
        );
    }
    let mut doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    // The engine's document as from_json saw it: providers priced from the table.
    let gateway = doc.get("gateway").cloned();
    prices::fill(&mut doc, gateway.as_ref());
    // While the engine changes, every upstream of the old and the new file is reachable, so a
    // call routed to a provider being added or removed still finds its upstream.
    let old = state.live.load_full();
    let mut bridge = Live::new(&config);
    for (name, up) in &old.upstreams {
        bridge.upstreams.entry(name.clone()).or_insert_with(|| up.clone());
    }
    state.live.store(Arc::new(bridge));
    let applied = state.blocking(|| {
        budgets::upsert_all(&state.engine, &doc, &config.engine)?;
        match (&state.budgets, &config.budgets) {
            (Some(b), Some((doc, c))) => b.apply(doc, c, budgeted(&config.gateway)),
            (Some(b), None) => {
                b.clear();
                Ok(())
            }
            _ => Ok(()),
        }
    });
    state.live.store(Arc::new(Live::new(&config)));
    match applied {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(e) => tracing::error!(error = %e, "reload failed part-way; the engine keeps what was applied"),
    }
}

/// What `config` changes that only a restart can.
fn needs_restart(state: &State, config: &ServeConfig) -> Vec<&'static str> {
    let old = state.engine.config();
    let new = &config.engine;
    let live = state.live.load();
    let (g, h) = (&live.gateway, &config.gateway);
    let mut out = Vec::new();
    for (changed, name) in [
        (old.lanes != new.lanes, "lanes"),
        (old.scoring != new.scoring, "scoring"),
        (old.health != new.health, "health"),
        (old.store != new.store, "store"),
        (old.permit_ttl_ms != new.permit_ttl_ms, "permit_ttl_ms"),
        (old.rate_tau_ms != new.rate_tau_ms, "anticipation"),
        (g.listen != h.listen, "gateway.listen"),
        (
            g.connect_timeout_ms != h.connect_timeout_ms,
            "gateway.connect_timeout_ms",
        ),
        (g.read_timeout_ms != h.read_timeout_ms, "gateway.read_timeout_ms"),
        (g.shutdown_grace_ms != h.shutdown_grace_ms, "gateway.shutdown_grace_ms"),
        (g.busy_poll_us != h.busy_poll_us, "gateway.busy_poll_us"),
        (
            g.cache.redis_url.as_ref().map(config::Secret::expose)
                != h.cache.redis_url.as_ref().map(config::Secret::expose)
                || g.cache.redis_prefix != h.cache.redis_prefix
                || g.cache.redis_timeout_ms != h.cache.redis_timeout_ms,
            "gateway.cache",
        ),
        (g.ledger != h.ledger, "gateway.ledger"),
        (g.alerts != h.alerts, "gateway.alerts"),
        (
            state.budgets.is_none() && config.budgets.is_some(),
            "gateway.keys[].quotas (no key had a budget at start)",
        ),
    ] {
        if changed {
            out.push(name);
        }
    }
    out
}

/// The names of the keys that have quotas.
fn budgeted(gw: &config::GatewayConfig) -> std::collections::HashSet<String> {
    gw.keys
        .values()
        .filter(|k| !k.quotas.is_null())
        .map(|k| k.name.clone())
        .collect()
}

/// Logs to stderr, one line per event: `RATEWISE_LOG` sets the filter (default `info`),
/// `RATEWISE_LOG_FORMAT=json` writes JSON lines instead of text.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RATEWISE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("RATEWISE_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}
