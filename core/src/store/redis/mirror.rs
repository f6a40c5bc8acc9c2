//! The engine's in-memory state as a mirror of Redis: registering a topology, sending a
//! [`Change`], reserving on the first candidate that fits, and adopting what the script answers
//! into the domain types through their plain setters. Each call is one round trip, made with
//! no lock held.

use smallvec::SmallVec;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::wire::{self, Args, BucketReply, ProviderReply};
use super::{Fail, Shared};
use crate::clock::Clock;
use crate::health::ProviderState;
use crate::quota::BucketState;
use crate::store::{Change, Names};
use crate::topology::{ProviderRt, Topology};

/// The shared state of one provider after a change, as Redis answered.
pub(crate) struct Post {
    provider: ProviderReply,
    buckets: SmallVec<[BucketReply; 8]>,
}

impl Post {
    /// Adopts it into the mirror.
    pub fn adopt(&self, p: &ProviderRt) {
        adopt_provider(&mut p.state.lock(), &self.provider);
        for (q, b) in p.quotas.iter().zip(&self.buckets) {
            adopt_bucket(&mut q.bucket.lock(), b);
        }
    }
}

/// One provider an acquire may reserve on, with the units it takes from each of its quotas.
pub(crate) struct Candidate<'a> {
    pub provider: &'a ProviderRt,
    pub units: SmallVec<[i64; 8]>,
}

fn adopt_bucket(b: &mut BucketState, r: &BucketReply) {
    b.set_shared(r.cap, r.learned, r.level, r.at);
}

fn adopt_provider(st: &mut ProviderState, r: &ProviderReply) {
    st.set_shared(r.hold, r.failures, r.tripped_until, r.k, r.probe_busy);
}

impl Shared {
    /// Runs the script with the arguments `args` builds for this engine's epoch; when Redis
    /// answers that it lost this engine's registration (flushed, restarted empty), counts a
    /// reset, registers again (creating the buckets afresh) and runs the call once more.
    fn call_registered(
        &self,
        clock: &Clock,
        topo: &Topology,
        args: impl Fn(i64) -> Args,
    ) -> Result<(i64, wire::Reader), Fail> {
        match self.call_at(clock, &args(self.epoch.load(Ordering::Acquire))) {
            Err(Fail::Reset) => {
                // Counted by `register`, which sees the epoch change.
                self.register(clock, topo, false, &Names::default())?;
                self.call_at(clock, &args(self.epoch.load(Ordering::Acquire)))
            }
            other => other,
        }
    }

    /// Registers every bucket and provider of `topo` in Redis (creating missing buckets;
    /// `upsert` adopts this configuration where Redis has another, else that is a conflict),
    /// and adopts the shared state. `fresh` names the keys and providers this engine re-adds
    /// after dropping them: they start fresh in Redis too.
    pub fn register(&self, clock: &Clock, topo: &Topology, upsert: bool, fresh: &Names) -> Result<(), Fail> {
        let now = match clock {
            Clock::Synced(c) if !c.is_synced() => None,
            c => Some(c.now_ms()),
        };
        let mut args = Args::new("reg", now, self.gc_ms, 0);
        args.s(if upsert { "upsert" } else { "new" });
        let mut quotas = Vec::new();
        let mut seen = rustc_hash::FxHashSet::default();
        for pc in &topo.config.providers {
            if let Some(p) = topo.providers.get(&pc.name) {
                for q in p.quotas.iter().filter(|q| seen.insert(q.cfg.key.clone())) {
                    quotas.push(q);
                }
            }
        }
        args.n(quotas.len() as i64);
        for q in &quotas {
            args.bucket(&q.cfg).s(if fresh.keys.contains(&q.cfg.key) {
                "fresh"
            } else {
                "keep"
            });
        }
        let providers: Vec<&Arc<ProviderRt>> = topo
            .config
            .providers
            .iter()
            .filter_map(|pc| topo.providers.get(&pc.name))
            .collect();
        args.n(providers.len() as i64);
        for p in &providers {
            args.name(&p.cfg.name).s(if fresh.providers.contains(&p.cfg.name) {
                "fresh"
            } else {
                "keep"
            });
        }
        let (instance, mut reply) = self.call_at(clock, &args)?;
        let epoch = reply.int()?;
        let buckets = quotas.iter().map(|_| reply.bucket()).collect::<Result<Vec<_>, _>>()?;
        let states = providers
            .iter()
            .map(|_| reply.provider())
            .collect::<Result<Vec<_>, _>>()?;
        self.instance.store(instance, Ordering::Release);
        // Registered before in another epoch: the store was lost meanwhile (an empty restart
        // while this engine was degraded, say), and this registration started it afresh.
        let before = self.epoch.swap(epoch, Ordering::AcqRel);
        if before != 0 && before != epoch {
            self.resets.fetch_add(1, Ordering::Relaxed);
        }
        for (q, b) in quotas.iter().zip(&buckets) {
            adopt_bucket(&mut q.bucket.lock(), b);
        }
        for (p, st) in providers.iter().zip(&states) {
            adopt_provider(&mut p.state.lock(), st);
        }
        Ok(())
    }

    /// Sends one change of a provider's shared state and returns the state Redis answers with,
    /// to adopt once the change is applied to memory too. On an error nothing was adopted; the
    /// caller decides what the failure means (`Shared::failed`, or keeping the change to send
    /// later).
    pub fn send(
        &self,
        clock: &Clock,
        topo: &Topology,
        p: &ProviderRt,
        change: &Change,
        now: i64,
    ) -> Result<Post, Fail> {
        let (sig, rep) = wire::signal_letters(change.signal.as_ref());
        let cooldowns = wire::cooldowns(p.cfg.cooldown_ms, &topo.config.health);
        let args = |epoch| {
            let mut args = Args::new("app", Some(now), self.gc_ms, epoch);
            match change.permit {
                Some((instance, id)) => args.s(&format!("{instance}:{id}")),
                None => args.s(""),
            };
            args.name(&p.cfg.name);
            match change.hold {
                Some(until) => args.n(until),
                None => args.s(""),
            };
            args.s(sig).s(rep);
            match change.point {
                Some(t) => args.n(t),
                None => args.s(""),
            };
            args.n(topo.config.health.cooldown_after);
            args.n(cooldowns.len() as i64);
            for &d in &cooldowns {
                args.n(d);
            }
            args.n(p.quotas.len() as i64);
            for (i, (q, &delta)) in p.quotas.iter().zip(&change.deltas).enumerate() {
                let reported = change.calibration.get(i).copied().unwrap_or_default();
                let learned = reported
                    .limit
                    .and_then(|l| q.bucket.read().learned_capacity(l))
                    .unwrap_or(0);
                // Deltas of a permit Redis never reserved (granted while degraded) stay local.
                let delta = if change.local_deltas { 0 } else { delta };
                args.bucket(&q.cfg)
                    .n(delta)
                    .n(learned)
                    .n(reported.remaining.map_or(-1, |r| r.max(0)));
            }
            args
        };
        let (_known, mut reply) = self.call_registered(clock, topo, args)?;
        let provider = reply.provider()?;
        let mut buckets = SmallVec::new();
        for _ in &p.quotas {
            buckets.push(reply.bucket()?);
        }
        Ok(Post { provider, buckets })
    }

    /// Frees, in Redis, permit `instance:id` whose acquire's reply was lost: its concurrency
    /// and probe slots if the acquire ran; if it has not run yet, a tombstone makes it reserve
    /// nothing when it does.
    pub fn release(&self, clock: &Clock, topo: &Topology, permit: (i64, u64), now: i64) -> Result<(), Fail> {
        let (instance, id) = permit;
        self.call_registered(clock, topo, |epoch| {
            let mut args = Args::new("rel", Some(now), self.gc_ms, epoch);
            args.s(&format!("{instance}:{id}"));
            args
        })
        .map(|_| ())
    }

    /// Reserves, in one script call, on the first candidate that fits everything in Redis, as
    /// permit `id` expiring at `deadline`, and adopts the state the script saw of every
    /// candidate. Returns the chosen candidate's index (`None`: none fitted) and the instance
    /// number the permit was granted under; `Err` when Redis did not answer.
    #[allow(clippy::too_many_arguments)]
    pub fn acquire(
        &self,
        clock: &Clock,
        topo: &Topology,
        cands: &[Candidate<'_>],
        id: u64,
        deadline: i64,
        headroom_ppm: i64,
        now: i64,
    ) -> Result<(Option<usize>, i64), Fail> {
        let args = |epoch| {
            let instance = self.instance.load(Ordering::Acquire);
            let mut args = Args::new("acq", Some(now), self.gc_ms, epoch);
            args.s(&format!("{instance}:{id}"))
                .n(deadline)
                .n(headroom_ppm)
                .n(cands.len() as i64);
            for c in cands {
                args.name(&c.provider.cfg.name).n(c.provider.quotas.len() as i64);
                for (q, &n) in c.provider.quotas.iter().zip(&c.units) {
                    args.bucket(&q.cfg).n(n);
                }
            }
            args
        };
        let (chosen, mut reply) = self.call_registered(clock, topo, args)?;
        let instance = self.instance.load(Ordering::Acquire);
        let mut adopted = Ok(());
        for c in cands {
            match reply.provider() {
                Ok(st) => adopt_provider(&mut c.provider.state.lock(), &st),
                Err(f) => adopted = Err(f),
            }
            for q in &c.provider.quotas {
                match reply.bucket() {
                    Ok(b) => adopt_bucket(&mut q.bucket.lock(), &b),
                    Err(f) => adopted = Err(f),
                }
            }
        }
        if let Err(fail) = adopted {
            // The reservation stands in Redis; the mirror is what could be read.
            let _ = self.failed(topo, fail);
        }
        Ok((usize::try_from(chosen).ok().filter(|&c| c < cands.len()), instance))
    }
}
