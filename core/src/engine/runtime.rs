//! Run-time configuration (docs/design.md §2, §12): providers and capabilities added, replaced
//! and removed while the engine serves, each change a new topology swapped in whole.

use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Engine;
use crate::config::{self, ProviderConfig};
use crate::error::{Error, Result};
use crate::store::Names;
use crate::topology::{self, Topology};

impl Engine {
    /// Adds or replaces a provider (a JSON object as in `providers[]`). Usage state of every
    /// quota whose key, dimension and window are unchanged is kept; health, circuit and latency
    /// are kept.
    pub fn upsert_provider(&self, provider: &Value) -> Result<()> {
        let new = config::parse_provider(provider, "provider")?;
        // Built and registered with no lock held (registering is a Redis round trip), then
        // installed under the writer lock if no other change came first; else built again.
        loop {
            let topo = self.topo.load_full();
            let mut cfg = topo.config.clone();
            let mut check: Vec<ProviderConfig> = cfg.providers.iter().filter(|p| p.name != new.name).cloned().collect();
            check.push(new.clone());
            let last = check.len() - 1;
            config::check_shared_keys(&check, |i| {
                if i == last {
                    "provider".into()
                } else {
                    format!("providers[{i}]")
                }
            })?;
            match cfg.providers.iter_mut().find(|p| p.name == new.name) {
                Some(slot) => *slot = new.clone(),
                None => cfg.providers.push(new.clone()),
            }
            let next = topology::build(cfg, Some(&topo), self.clock.now_ms(), &self.next_bucket_id);
            let (fresh, dropped) = self.dropped_after(&topo, &next);
            if let Some(sh) = &self.shared
                && sh.ready(&self.clock, &next)?
                && let Err(fail) = sh.register(&self.clock, &next, true, &fresh)
            {
                sh.failed(&next, fail)?;
            }
            let _w = self.writer.lock();
            if !Arc::ptr_eq(&self.topo.load_full(), &topo) {
                continue;
            }
            *self.dropped.lock() = dropped;
            self.topo.store(Arc::new(next));
            return Ok(());
        }
    }

    /// With a shared store, the keys and providers `next` re-adds after this engine dropped
    /// them (they start fresh in Redis too, docs/design.md §12), and those still dropped once
    /// `next` is in force.
    fn dropped_after(&self, old: &Topology, next: &Topology) -> (Names, Names) {
        if self.shared.is_none() {
            return Default::default();
        }
        let mut gone = self.dropped.lock().clone();
        gone.keys
            .extend(old.buckets.keys().filter(|k| !next.buckets.contains_key(*k)).cloned());
        gone.providers.extend(
            old.providers
                .keys()
                .filter(|n| !next.providers.contains_key(*n))
                .cloned(),
        );
        let fresh = Names {
            keys: gone
                .keys
                .iter()
                .filter(|k| next.buckets.contains_key(*k))
                .cloned()
                .collect(),
            providers: gone
                .providers
                .iter()
                .filter(|n| next.providers.contains_key(*n))
                .cloned()
                .collect(),
        };
        gone.keys.retain(|k| !fresh.keys.contains(k));
        gone.providers.retain(|n| !fresh.providers.contains(n));
        (fresh, gone)
    }

    /// Removes a provider: it stays listed in its capabilities and is skipped as `unregistered`.
    pub fn remove_provider(&self, name: &str) -> Result<()> {
        let _w = self.writer.lock();
        let topo = self.topo.load_full();
        if !topo.providers.contains_key(name) {
            return Err(Error::UnknownProvider(name.to_string()));
        }
        let mut cfg = topo.config.clone();
        cfg.providers.retain(|p| p.name != name);
        let next = topology::build(cfg, Some(&topo), self.clock.now_ms(), &self.next_bucket_id);
        let (_, dropped) = self.dropped_after(&topo, &next);
        *self.dropped.lock() = dropped;
        self.topo.store(Arc::new(next));
        Ok(())
    }

    /// Adds or replaces a capability (a JSON object as in `capabilities[]`).
    pub fn upsert_capability(&self, capability: &Value) -> Result<()> {
        let new = config::parse_capability(capability, "capability")?;
        let _w = self.writer.lock();
        let topo = self.topo.load_full();
        config::check_capability_providers(&new, "capability", |n| topo.providers.contains_key(n))?;
        let mut cfg = topo.config.clone();
        match cfg.capabilities.iter_mut().find(|c| c.name == new.name) {
            Some(slot) => *slot = new,
            None => cfg.capabilities.push(new),
        }
        let next = topology::build(cfg, Some(&topo), self.clock.now_ms(), &self.next_bucket_id);
        self.topo.store(Arc::new(next));
        Ok(())
    }

    /// Removes a capability.
    pub fn remove_capability(&self, name: &str) -> Result<()> {
        let _w = self.writer.lock();
        let topo = self.topo.load_full();
        let cap = topo.capability(name)?;
        let mut cfg = topo.config.clone();
        cfg.capabilities.retain(|c| c.name != name);
        let next = topology::build(cfg, Some(&topo), self.clock.now_ms(), &self.next_bucket_id);
        self.topo.store(Arc::new(next));
        let mut retired = self.retired.lock();
        let s = &cap.stats;
        retired.selects += s.selects.load(Ordering::Relaxed);
        retired.acquires += s.acquires.load(Ordering::Relaxed);
        retired.grants += s.grants.load(Ordering::Relaxed);
        retired.refusals += s.refusals.load(Ordering::Relaxed);
        for (total, g) in retired.lane_grants.iter_mut().zip(&s.lane_grants) {
            *total += g.load(Ordering::Relaxed);
        }
        Ok(())
    }
}
