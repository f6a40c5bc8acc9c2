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
use crate::error::Result as CoreResult;
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
    /// Registers every bucket and provider of `topo` in Redis (creating missing buckets;
    /// `upsert` adopts this configuration where Redis has another, else that is a conflict),
    /// and adopts the shared state. `fresh` names the keys and providers this engine re-adds
    /// after dropping them: they start fresh in Redis too.
    pub fn register(&self, clock: &Clock, topo: &Topology, upsert: bool, fresh: &Names) -> Result<(), Fail> {
        let now = match clock {
            Clock::Synced(c) if !c.is_synced() => None,
            c => Some(c.now_ms()),
        };
        let mut args = Args::new("reg", now, self.gc_ms);
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
            args.s(&p.cfg.name).s(if fresh.providers.contains(&p.cfg.name) {
                "fresh"
            } else {
                "keep"
            });
        }
        let (instance, mut reply) = self.call_at(clock, &args)?;
        let buckets = quotas.iter().map(|_| reply.bucket()).collect::<Result<Vec<_>, _>>()?;
        let states = providers
            .iter()
            .map(|_| reply.provider())
            .collect::<Result<Vec<_>, _>>()?;
        self.instance.store(instance, Ordering::Release);
        for (q, b) in quotas.iter().zip(&buckets) {
            adopt_bucket(&mut q.bucket.lock(), b);
        }
        for (p, st) in providers.iter().zip(&states) {
            adopt_provider(&mut p.state.lock(), st);
        }
        Ok(())
    }

    /// Sends one change of a provider's shared state and returns the state Redis answers with
    /// (to adopt once the change is applied to memory too); `None` when Redis did not answer
    /// and the `on_error` mode keeps the change local.
    pub fn send(
        &self,
        clock: &Clock,
        topo: &Topology,
        p: &ProviderRt,
        change: &Change,
        now: i64,
    ) -> CoreResult<Option<Post>> {
        let permit = match change.permit {
            Some((instance, id)) => format!("{instance}:{id}"),
            None => String::new(),
        };
        let mut args = Args::new("app", Some(now), self.gc_ms);
        args.s(&permit).s(&p.cfg.name);
        match change.hold {
            Some(until) => args.n(until),
            None => args.s(""),
        };
        let (sig, rep) = wire::signal_letters(change.signal.as_ref());
        args.s(sig).s(rep).n(topo.config.health.cooldown_after);
        let cooldowns = wire::cooldowns(p.cfg.cooldown_ms, &topo.config.health);
        args.n(cooldowns.len() as i64);
        for d in cooldowns {
            args.n(d);
        }
        args.n(p.quotas.len() as i64);
        for (i, (q, &delta)) in p.quotas.iter().zip(&change.deltas).enumerate() {
            let reported = change.calibration.get(i).copied().unwrap_or_default();
            let learned = reported
                .limit
                .and_then(|l| q.bucket.read().learned_capacity(l))
                .unwrap_or(0);
            args.bucket(&q.cfg)
                .n(delta)
                .n(learned)
                .n(reported.remaining.map_or(-1, |r| r.max(0)));
        }
        let read = |reply: &mut wire::Reader| -> Result<Post, Fail> {
            let provider = reply.provider()?;
            let mut buckets = SmallVec::new();
            for _ in &p.quotas {
                buckets.push(reply.bucket()?);
            }
            Ok(Post { provider, buckets })
        };
        match self
            .call_at(clock, &args)
            .and_then(|(_known, mut reply)| read(&mut reply))
        {
            Ok(post) => Ok(Some(post)),
            Err(fail) => self.failed(topo, fail).map(|()| None),
        }
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
        let instance = self.instance.load(Ordering::Acquire);
        let mut args = Args::new("acq", Some(now), self.gc_ms);
        args.s(&format!("{instance}:{id}"))
            .n(deadline)
            .n(headroom_ppm)
            .n(cands.len() as i64);
        for c in cands {
            args.s(&c.provider.cfg.name).n(c.provider.quotas.len() as i64);
            for (q, &n) in c.provider.quotas.iter().zip(&c.units) {
                args.bucket(&q.cfg).n(n);
            }
        }
        let (chosen, mut reply) = self.call_at(clock, &args)?;
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
