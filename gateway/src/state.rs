//! What every request shares: the engine, the reloadable part of the configuration, the
//! upstream client and the metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use ratewise::Engine;

use crate::config::{GatewayConfig, ServeConfig, Upstream};
use crate::metrics::Metrics;
use crate::upstream::Client;

/// The part of the configuration a reload swaps whole.
#[derive(Debug)]
pub struct Live {
    /// The gateway's settings.
    pub gateway: GatewayConfig,
    /// Upstream per provider.
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// The price of each priced provider (USD per million tokens, and exact pico-USD).
    pub prices: HashMap<String, ratewise::Price>,
    /// Providers of each capability, in configuration order.
    pub capabilities: HashMap<String, Vec<String>>,
    /// Capability names in configuration order (`/v1/models`).
    pub capability_order: Vec<String>,
    /// The provider → model map (`/v1/models`).
    pub models: HashMap<String, String>,
    /// The lanes' names.
    pub lanes: Vec<String>,
}

impl Live {
    /// The live part of `config`.
    pub fn new(config: &ServeConfig) -> Live {
        let engine = &config.engine;
        Live {
            gateway: config.gateway.clone(),
            upstreams: config
                .gateway
                .upstreams
                .iter()
                .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                .collect(),
            prices: engine
                .providers
                .iter()
                .filter_map(|p| p.price.map(|pr| (p.name.clone(), pr)))
                .collect(),
            capabilities: engine
                .capabilities
                .iter()
                .map(|c| (c.name.clone(), c.providers.iter().map(|e| e.provider.clone()).collect()))
                .collect(),
            capability_order: engine.capabilities.iter().map(|c| c.name.clone()).collect(),
            models: engine
                .providers
                .iter()
                .map(|p| (p.name.clone(), p.model.clone()))
                .collect(),
            lanes: engine.lanes.iter().map(|l| l.name.clone()).collect(),
        }
    }
}

/// Shared by every request.
pub struct State {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The engine calls the Redis store: its calls block on I/O.
    pub shared: bool,
    /// Swapped whole on reload.
    pub live: ArcSwap<Live>,
    /// The upstream HTTP client (pooled).
    pub client: Client,
    /// The metrics.
    pub metrics: Metrics,
    /// SIGTERM received: `/readyz` says no.
    pub draining: AtomicBool,
    /// Virtual keys' budgets (`None`: no key has quotas).
    pub budgets: Option<crate::budgets::Budgets>,
    /// The response cache.
    pub cache: crate::cache::Cache,
    /// The spend ledger and availability log (`None`: `gateway.ledger: false`).
    pub books: Option<crate::ledger::Books>,
    /// Webhook alerts (`None`: off).
    pub alerts: Option<crate::alerts::Alerts>,
    /// The busy poller (`None`: `busy_poll_us` 0, or not on a single-threaded runtime).
    pub busy: Option<std::sync::Arc<crate::busy::BusyPoll>>,
}

impl State {
    /// An event the runtime should keep polling after (busy polling; nothing when off).
    #[inline]
    pub fn kick(&self) {
        if let Some(b) = &self.busy {
            b.kick();
        }
    }
}

impl State {
    /// Runs an engine call: on the Redis store it does network I/O, so it runs where blocking
    /// is allowed (the runtime moves other tasks off this worker meanwhile). No lock of ours is
    /// held across it.
    pub fn blocking<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.shared
            && let Ok(h) = tokio::runtime::Handle::try_current()
            && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            return tokio::task::block_in_place(f);
        }
        f()
    }
}

impl State {
    /// Writes what the ledger has queued and waits for it (at shutdown).
    pub async fn flush_ledger(self: &std::sync::Arc<Self>) {
        if self.books.is_none() {
            return;
        }
        let state = self.clone();
        // The report reader is closed here too: a PostgreSQL client must not be dropped on an
        // async worker (its drop blocks).
        let flushed = tokio::task::spawn_blocking(move || {
            state.books.as_ref().map(|b| {
                b.close_reader();
                b.ledger.flush()
            })
        })
        .await;
        if let Ok(Some(Err(e))) = flushed {
            tracing::error!(error = %e, "the ledger could not write everything at shutdown");
        }
    }
}
