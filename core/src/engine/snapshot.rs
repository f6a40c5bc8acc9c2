//! The engine's JSON view (stable paths: docs/design.md §9).

use serde_json::{Map, Value, json};
use std::sync::atomic::Ordering;

use super::{Engine, Retired};

impl Engine {
    /// A JSON view of the engine (stable paths: docs/design.md §9).
    pub fn snapshot(&self) -> Value {
        let now = self.tick();
        let topo = self.topo.load();
        let cfg = &topo.config;
        let mut providers = Map::new();
        for pc in &cfg.providers {
            let Some(p) = topo.providers.get(&pc.name) else {
                continue;
            };
            let st = p.state.lock().clone();
            let quotas: Vec<Value> = p
                .quotas
                .iter()
                .map(|q| {
                    let mut b = q.bucket.lock();
                    b.sync(now);
                    json!({
                        "key": q.cfg.key,
                        "dimension": q.cfg.dimension.as_str(),
                        "remaining": b.remaining(),
                        "capacity": b.configured,
                        "learned_limit": b.learned,
                        "drain_per_s": b.drain_per_s(now, cfg.rate_tau_ms),
                    })
                })
                .collect();
            providers.insert(
                pc.name.clone(),
                json!({
                    "health": st.health(now, &cfg.health),
                    "circuit": st.circuit(now).as_str(),
                    "held_ms": (st.hold_until.saturating_sub(now)).max(0),
                    "in_flight": st.live_permits,
                    "latency_ms": st.latency_ms,
                    "quotas": quotas,
                }),
            );
        }
        let Retired {
            mut selects,
            mut acquires,
            mut grants,
            mut refusals,
            mut lane_grants,
        } = self.retired.lock().clone();
        for cap in topo.capabilities.values() {
            let s = &cap.stats;
            selects += s.selects.load(Ordering::Relaxed);
            acquires += s.acquires.load(Ordering::Relaxed);
            grants += s.grants.load(Ordering::Relaxed);
            refusals += s.refusals.load(Ordering::Relaxed);
            for (total, g) in lane_grants.iter_mut().zip(&s.lane_grants) {
                *total += g.load(Ordering::Relaxed);
            }
        }
        let mut lanes = Map::new();
        let waits = self.queue.lane_stats();
        for ((lane, granted), w) in cfg.lanes.iter().zip(lane_grants).zip(waits) {
            lanes.insert(
                lane.name.clone(),
                json!({"waiting": w.waiting, "granted": granted, "expired": w.expired,
                       "wait_p50_ms": w.wait_p50_ms, "wait_p99_ms": w.wait_p99_ms, "wait_max_ms": w.wait_max_ms}),
            );
        }
        json!({
            "providers": providers,
            "lanes": lanes,
            "counters": {
                "selects": selects,
                "acquires": acquires,
                "grants": grants,
                "refusals": refusals,
                "permits_expired": self.permits_expired.load(Ordering::Relaxed),
                "header_errors": self.header_errors.load(Ordering::Relaxed),
            },
            "store": match &self.shared {
                None => json!({"kind": "memory", "mode": "normal"}),
                Some(sh) => json!({
                    "kind": "redis",
                    "mode": sh.mode().as_str(),
                    "resets": sh.resets.load(Ordering::Relaxed),
                    "unsent": self.unsent.lock().len(),
                    "unsent_dropped": self.unsent_dropped.load(Ordering::Relaxed),
                }),
            },
        })
    }
}
