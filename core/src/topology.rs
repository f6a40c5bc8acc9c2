//! The run-time topology: everything derived from the configuration (providers with their
//! buckets, capabilities with their entries and counters), replaced whole by the run-time
//! configuration calls and read without locks by every decision.

use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{Config, LaneConfig, ProviderConfig, QuotaConfig};
use crate::error::{Error, Result};
use crate::health::ProviderState;
use crate::quota::{Bucket, BucketState};
use crate::scoring;

pub(crate) struct QuotaRt {
    pub(crate) cfg: QuotaConfig,
    pub(crate) bucket: Arc<Bucket>,
}

pub(crate) struct ProviderRt {
    pub(crate) cfg: ProviderConfig,
    pub(crate) quotas: Vec<QuotaRt>,
    /// Quota indices sorted by bucket id: the global lock order.
    pub(crate) lock_order: Vec<usize>,
    pub(crate) state: Arc<ProviderCell>,
}

/// A provider's signals behind its lock, on cache lines of its own (see [`Bucket`]).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct ProviderCell(Mutex<ProviderState>);

impl std::ops::Deref for ProviderCell {
    type Target = Mutex<ProviderState>;
    fn deref(&self) -> &Mutex<ProviderState> {
        &self.0
    }
}

pub(crate) struct Entry {
    pub(crate) name: Arc<str>,
    /// The provider's upstream model (its name when the provider is missing).
    pub(crate) model: Arc<str>,
    pub(crate) priority: f64,
    pub(crate) provider: Option<Arc<ProviderRt>>,
}

#[derive(Default)]
#[repr(align(128))]
pub(crate) struct CapStats {
    pub(crate) selects: AtomicU64,
    pub(crate) acquires: AtomicU64,
    pub(crate) grants: AtomicU64,
    pub(crate) refusals: AtomicU64,
    pub(crate) lane_grants: Vec<AtomicU64>,
}

impl CapStats {
    pub(crate) fn new(lanes: usize) -> Self {
        CapStats {
            lane_grants: (0..lanes).map(|_| AtomicU64::new(0)).collect(),
            ..Default::default()
        }
    }
}

pub(crate) struct CapabilityRt {
    pub(crate) entries: Vec<Entry>,
    pub(crate) stats: Arc<CapStats>,
}

/// Everything derived from the configuration; replaced whole by the run-time calls.
pub(crate) struct Topology {
    pub(crate) config: Config,
    pub(crate) providers: HashMap<String, Arc<ProviderRt>>,
    pub(crate) capabilities: HashMap<String, CapabilityRt>,
    pub(crate) buckets: HashMap<String, Arc<Bucket>>,
}

impl Topology {
    pub(crate) fn capability(&self, name: &str) -> Result<&CapabilityRt> {
        self.capabilities
            .get(name)
            .ok_or_else(|| Error::UnknownCapability(name.to_string()))
    }

    pub(crate) fn provider(&self, name: &str) -> Result<&Arc<ProviderRt>> {
        self.providers
            .get(name)
            .ok_or_else(|| Error::UnknownProvider(name.to_string()))
    }

    pub(crate) fn lane(&self, name: Option<&str>) -> Result<usize> {
        let lanes: &[LaneConfig] = &self.config.lanes;
        match name {
            None => Ok(self.config.default_lane_index()),
            Some(n) => lanes
                .iter()
                .position(|l| l.name == n)
                .ok_or_else(|| Error::InvalidArgument(format!("unknown lane '{n}'"))),
        }
    }
}

/// Derives the run-time topology from a configuration, keeping the state of `old` where
/// docs/design.md §2 and §12 say it is kept.
pub(crate) fn build(config: Config, old: Option<&Topology>, now: i64, next_bucket_id: &AtomicU64) -> Topology {
    let mut buckets: HashMap<String, Arc<Bucket>> = HashMap::default();
    let mut providers = HashMap::default();
    for pc in &config.providers {
        let mut quotas = Vec::with_capacity(pc.quotas.len());
        for q in &pc.quotas {
            let bucket = match buckets.get(&q.key) {
                Some(b) => b.clone(),
                None => {
                    let kept = old
                        .and_then(|o| o.buckets.get(&q.key))
                        .filter(|b| b.lock().compatible_with(q));
                    let b = match kept {
                        Some(b) => {
                            let mut s = b.lock();
                            s.sync(now);
                            s.reconfigure(q);
                            drop(s);
                            b.clone()
                        }
                        None => Arc::new(Bucket::new(
                            next_bucket_id.fetch_add(1, Ordering::Relaxed),
                            BucketState::new(q, now),
                        )),
                    };
                    buckets.insert(q.key.clone(), b.clone());
                    b
                }
            };
            quotas.push(QuotaRt { cfg: q.clone(), bucket });
        }
        let mut lock_order: Vec<usize> = (0..quotas.len()).collect();
        lock_order.sort_by_key(|&i| quotas[i].bucket.id);
        let state = old
            .and_then(|o| o.providers.get(&pc.name))
            .map(|p| p.state.clone())
            .unwrap_or_default();
        providers.insert(
            pc.name.clone(),
            Arc::new(ProviderRt {
                cfg: pc.clone(),
                quotas,
                lock_order,
                state,
            }),
        );
    }
    let mut capabilities = HashMap::default();
    for cc in &config.capabilities {
        let priorities: Vec<f64> = cc.providers.iter().map(|e| e.priority).collect();
        let entries = cc
            .providers
            .iter()
            .zip(scoring::priority_terms(&priorities))
            .map(|(e, priority)| Entry {
                name: Arc::from(e.provider.as_str()),
                model: Arc::from(
                    providers
                        .get(&e.provider)
                        .map_or(e.provider.as_str(), |p| p.cfg.model.as_str()),
                ),
                priority,
                provider: providers.get(&e.provider).cloned(),
            })
            .collect();
        let stats = old
            .and_then(|o| o.capabilities.get(&cc.name))
            .map(|c| c.stats.clone())
            .unwrap_or_else(|| Arc::new(CapStats::new(config.lanes.len())));
        capabilities.insert(cc.name.clone(), CapabilityRt { entries, stats });
    }
    Topology {
        config,
        providers,
        capabilities,
        buckets,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};

    use crate::{Config, Engine, ManualClock};

    /// Parses, validates and builds an engine from `doc`; returns how long that took.
    fn construct(what: &str, doc: &Value) -> Duration {
        let started = Instant::now();
        let config = Config::from_value(doc).unwrap();
        Engine::with_clock(config, ManualClock::new(0).into()).unwrap();
        let took = started.elapsed();
        println!("{what}: {took:?}");
        took
    }

    /// Construction is linear in lanes, quotas per provider, providers per capability and
    /// capabilities (each was quadratic: 20–40 s per case in a debug build). The bound is generous
    /// on purpose: linear takes 0.2–1 s here in a debug build.
    #[test]
    fn construction_is_linear_in_the_size_of_the_configuration() {
        const BOUND: Duration = Duration::from_secs(5);
        let n = 50_000;
        let mut lanes: Vec<Value> = (0..n).map(|i| json!({"name": format!("lane-{i}")})).collect();
        lanes.push(json!({"name": "normal"}));
        let took = construct(
            "50k lanes",
            &json!({"providers": [{"name": "a"}], "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
                    "lanes": lanes}),
        );
        assert!(took < BOUND, "50k lanes took {took:?}");

        let providers: Vec<Value> = (0..n).map(|i| json!({"name": format!("p-{i}")})).collect();
        let entries: Vec<Value> = (0..n).map(|i| json!({"provider": format!("p-{i}")})).collect();
        let took = construct(
            "50k providers in one capability",
            &json!({"providers": providers, "capabilities": [{"name": "c", "providers": entries}]}),
        );
        assert!(took < BOUND, "50k providers in one capability took {took:?}");

        let quotas: Vec<Value> = (0..n)
            .map(|i| json!({"dimension": "requests", "limit": 10, "key": format!("k-{i}")}))
            .collect();
        let took = construct(
            "a provider with 50k quotas",
            &json!({"providers": [{"name": "a", "quotas": quotas}]}),
        );
        assert!(took < BOUND, "a provider with 50k quotas took {took:?}");

        let capabilities: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("c-{i}"), "providers": [{"provider": "a"}]}))
            .collect();
        let took = construct(
            "50k capabilities",
            &json!({"providers": [{"name": "a"}], "capabilities": capabilities}),
        );
        assert!(took < BOUND, "50k capabilities took {took:?}");
    }
}
