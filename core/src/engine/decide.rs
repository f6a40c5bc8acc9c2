//! Deciding (docs/design.md §4, §5): rank the providers of a capability for a request, the one
//! eligibility rule, and the reservation that charges the chosen one.

use smallvec::SmallVec;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Engine, PermitRecord};
use crate::call::{Alternative, Decision, Permit, PermitId, Request};
use crate::error::{Error, Result};
use crate::quota::{BucketGuard, Fit};
use crate::scheduler::queue::Blocked;
use crate::scoring::{self, Breakdown};
use crate::store::Unsent;
use crate::store::permits::next_permit_id;
use crate::store::redis::{Candidate, Fail, Shared};
use crate::topology::{CapabilityRt, ProviderRt, Topology};
use crate::vocab::{CircuitState, Dimension, SkipReason, Skipped};

/// One ask of the engine: a request in a lane (an index) at a time, with the providers that
/// higher-ranked waiters could use (skipped as `queued`).
#[derive(Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub lane: usize,
    pub request: &'a Request<'a>,
    pub now: i64,
    pub queued: Option<&'a Blocked>,
}

/// The result of checking one provider for one request.
pub(crate) struct Eval {
    skip: Option<SkipReason>,
    /// When every predictable blocker is gone; `None` when some blocker is unpredictable.
    ready: Option<i64>,
    quota: f64,
    health: f64,
    latency: Option<f64>,
    cost: Option<u64>,
    latency_term: f64,
    cost_term: f64,
}

/// Per-provider evaluations of one request (inline for capabilities of up to 8 providers).
pub(crate) type Evals = SmallVec<[Eval; 8]>;
/// Eligible providers as (entry index, score), best first.
type Ranked = SmallVec<[(usize, f64); 8]>;

/// A provider that was skipped: its entry index, why, and when it is predicted to be ready.
#[derive(Clone, Copy)]
pub(crate) struct Skip {
    index: usize,
    reason: SkipReason,
    ready: Option<i64>,
}

/// The providers of a capability for one request: the eligible ones best first (ties in
/// capability order), and the skipped ones in capability order.
pub(crate) struct Ranking {
    eligible: Ranked,
    skipped: Vec<Skip>,
}

impl Engine {
    /// Reserves on the best provider not in `ask.queued`, as permit `id` (a new id when
    /// `None`). Counts the grant; the caller counts a refusal.
    pub(crate) fn try_acquire(
        &self,
        topo: &Topology,
        cap: &CapabilityRt,
        ask: Ask<'_>,
        id: Option<u64>,
    ) -> Result<Permit> {
        if let Some(sh) = self.sharing(topo)? {
            return self.acquire_shared(sh, topo, cap, ask, id);
        }
        let Ask { lane, request, now, .. } = ask;
        let ppm = topo.config.lanes[lane].headroom_ppm;
        // A reservation can lose a race after scoring; rank again (bounded) before refusing.
        for _ in 0..4 {
            let mut evals = Evals::new();
            let ranking = self.rank(topo, cap, ask, &mut evals);
            if ranking.eligible.is_empty() {
                break;
            }
            for (pos, &(idx, _)) in ranking.eligible.iter().enumerate() {
                let Some(provider) = &cap.entries[idx].provider else {
                    continue;
                };
                let Some(record) = self.reserve(topo, provider, request, ppm, evals[idx].cost, now, true) else {
                    continue;
                };
                let ranking = Ranking {
                    eligible: ranking.eligible.clone(),
                    skipped: ranking.skipped,
                };
                let decision = self.decide(cap, ranking, &evals, now, Some(pos))?;
                let id = id.unwrap_or_else(next_permit_id);
                return Ok(self.issue(topo, cap, ask, id, record, decision));
            }
        }
        let mut evals = Evals::new();
        let ranking = self.rank(topo, cap, ask, &mut evals);
        Err(refused(self.decide(cap, ranking, &evals, now, None)))
    }

    /// Stores a reserved permit with its deadline and counts the grant.
    fn issue(
        &self,
        topo: &Topology,
        cap: &CapabilityRt,
        ask: Ask<'_>,
        id: u64,
        record: PermitRecord,
        decision: Decision,
    ) -> Permit {
        self.permits
            .insert(id, ask.now.saturating_add(topo.config.permit_ttl_ms), record);
        cap.stats.grants.fetch_add(1, Ordering::Relaxed);
        cap.stats.lane_grants[ask.lane].fetch_add(1, Ordering::Relaxed);
        Permit {
            id: PermitId(id),
            decision,
        }
    }

    /// `acquire` with shared accounting: one script call reserves the first candidate that
    /// fits in Redis (see `store::redis`); the mirror adopts what the script saw, the
    /// decision is ranked on it, and the mirror is charged as the script charged.
    fn acquire_shared(
        &self,
        sh: &Shared,
        topo: &Topology,
        cap: &CapabilityRt,
        ask: Ask<'_>,
        id: Option<u64>,
    ) -> Result<Permit> {
        let Ask { lane, request, now, .. } = ask;
        let ppm = topo.config.lanes[lane].headroom_ppm;
        let mut evals = Evals::new();
        let ranking = self.rank(topo, cap, ask, &mut evals);
        // Candidates: the eligible ones, and those skipped only for what other processes may
        // have changed since the last reply. One skipped for a quota ranks by its score with
        // Q = 0 (as if the unit it needs had just been freed, say by another process's
        // completion); one held or with its circuit open or busy goes last.
        let w = &topo.config.scoring;
        let mut ranked: Ranked = ranking.eligible.clone();
        let mut last: SmallVec<[usize; 8]> = SmallVec::new();
        for s in &ranking.skipped {
            match s.reason {
                SkipReason::Quota(_) | SkipReason::QuotaTooLarge(_) => {
                    let b = Breakdown {
                        quota: 0.0,
                        health: evals[s.index].health,
                        priority: cap.entries[s.index].priority,
                        latency: 1.0,
                        cost: 1.0,
                    };
                    ranked.push((s.index, b.score(w)));
                }
                SkipReason::Held | SkipReason::CircuitOpen | SkipReason::HalfOpenBusy => last.push(s.index),
                _ => {}
            }
        }
        // Stable: the eligible keep their order, and win ties.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        // Each candidate with its entry index (the script answers with a candidate's position).
        let (order, cands): (SmallVec<[usize; 8]>, SmallVec<[Candidate<'_>; 8]>) = ranked
            .iter()
            .map(|&(i, _)| i)
            .chain(last)
            .filter_map(|i| cap.entries[i].provider.as_deref().map(|p| (i, p)))
            .map(|(i, p)| {
                let units = p
                    .quotas
                    .iter()
                    .map(|q| units(q.cfg.dimension, request, evals[i].cost))
                    .collect();
                (i, Candidate { provider: p, units })
            })
            .unzip();
        if order.is_empty() {
            return Err(refused(self.decide(cap, ranking, &evals, now, None)));
        }
        let id = id.unwrap_or_else(next_permit_id);
        let deadline = now.saturating_add(topo.config.permit_ttl_ms);
        let (chosen, instance) = match sh.acquire(&self.clock, topo, &cands, id, deadline, ppm, now) {
            Ok(r) => r,
            Err(fail) => {
                // The script may still run (a reply lost to a timeout): release what it may
                // reserve as soon as Redis answers again.
                if !matches!(fail, Fail::Conflict(_)) {
                    let instance = sh.instance.load(Ordering::Acquire);
                    self.keep_unsent(Unsent::Release { permit: (instance, id) });
                }
                sh.failed(topo, fail)?;
                // Degraded (`local` or `open`): decide in memory.
                return self.try_acquire(topo, cap, ask, Some(id));
            }
        };
        let mut evals = Evals::new();
        let mut ranking = self.rank(topo, cap, ask, &mut evals);
        let Some(idx) = chosen.map(|c| order[c]) else {
            return Err(refused(self.decide(cap, ranking, &evals, now, None)));
        };
        let pos = match ranking.eligible.iter().position(|&(i, _)| i == idx) {
            Some(pos) => pos,
            None => {
                // The script reserved a provider this process's own signals (health) now rule
                // out: the reservation stands, so the decision names it.
                ranking.skipped.retain(|s| s.index != idx);
                ranking.eligible.insert(0, (idx, 0.0));
                0
            }
        };
        let Some(provider) = &cap.entries[idx].provider else {
            return Err(refused(self.decide(cap, ranking, &evals, now, None)));
        };
        // An unchecked reservation always succeeds.
        let Some(mut record) = self.reserve(topo, provider, request, ppm, evals[idx].cost, now, false) else {
            return Err(refused(self.decide(cap, ranking, &evals, now, None)));
        };
        record.instance = instance;
        let decision = self.decide(cap, ranking, &evals, now, Some(pos))?;
        Ok(self.issue(topo, cap, ask, id, record, decision))
    }

    /// Evaluates every provider of the capability.
    pub(crate) fn rank(&self, topo: &Topology, cap: &CapabilityRt, ask: Ask<'_>, evals: &mut Evals) -> Ranking {
        let Ask {
            lane,
            request,
            now,
            queued,
        } = ask;
        let ppm = topo.config.lanes[lane].headroom_ppm;
        evals.clear();
        let mut skipped = Vec::new();
        for (i, e) in cap.entries.iter().enumerate() {
            let ev = match &e.provider {
                None => Eval::skip(SkipReason::Unregistered),
                Some(_) if request.exclude.iter().any(|x| **x == *e.name) => Eval::skip(SkipReason::Excluded),
                // A higher-ranked waiter could use it (docs/design.md §8); no ready time.
                Some(_) if queued.is_some_and(|q| q.contains(&e.name)) => Eval::skip(SkipReason::Queued),
                Some(p) => self.evaluate(topo, p, request, ppm, now),
            };
            if let Some(reason) = ev.skip {
                skipped.push(Skip {
                    index: i,
                    reason,
                    ready: ev.ready,
                });
            }
            evals.push(ev);
        }
        let min_latency = evals
            .iter()
            .filter(|e| e.skip.is_none())
            .filter_map(|e| e.latency)
            .reduce(f64::min);
        let min_cost = evals.iter().filter(|e| e.skip.is_none()).filter_map(|e| e.cost).min();
        let w = &topo.config.scoring;
        let mut eligible = Ranked::new();
        for (i, ev) in evals.iter_mut().enumerate() {
            if ev.skip.is_some() {
                continue;
            }
            let b = Breakdown {
                quota: ev.quota,
                health: ev.health,
                priority: cap.entries[i].priority,
                latency: scoring::relative(min_latency, ev.latency),
                cost: match ev.cost {
                    Some(c) if c > 0 => scoring::relative(min_cost.map(|m| m as f64), Some(c as f64)),
                    _ => 1.0,
                },
            };
            ev.latency_term = b.latency;
            ev.cost_term = b.cost;
            eligible.push((i, b.score(w)));
        }
        eligible.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ranking { eligible, skipped }
    }

    /// The refusal a request would get now (`None` when some provider is eligible).
    pub(crate) fn refusal(&self, topo: &Topology, cap: &CapabilityRt, ask: Ask<'_>) -> Option<Error> {
        let mut evals = Evals::new();
        let ranking = self.rank(topo, cap, ask, &mut evals);
        self.decide(cap, ranking, &evals, ask.now, None).err()
    }

    /// Builds the decision (with `chosen` the position in `eligible` actually reserved) or the
    /// refusal.
    pub(crate) fn decide(
        &self,
        cap: &CapabilityRt,
        ranking: Ranking,
        evals: &[Eval],
        now: i64,
        chosen: Option<usize>,
    ) -> Result<Decision> {
        let Ranking { mut eligible, skipped } = ranking;
        let skipped_out: Vec<Skipped> = skipped
            .iter()
            .map(|s| Skipped {
                provider: cap.entries[s.index].name.clone(),
                reason: s.reason,
            })
            .collect();
        if eligible.is_empty() {
            let ready = skipped.iter().filter_map(|s| s.ready).min();
            return Err(Error::NoAvailableProvider {
                retry_after_ms: ready.map(|t| t.saturating_sub(now).max(0)),
                skipped: skipped_out,
            });
        }
        let (idx, score) = eligible.remove(chosen.unwrap_or(0));
        let ev = &evals[idx];
        Ok(Decision {
            provider: cap.entries[idx].name.clone(),
            model: cap.entries[idx].model.clone(),
            score,
            breakdown: Breakdown {
                quota: ev.quota,
                health: ev.health,
                priority: cap.entries[idx].priority,
                latency: ev.latency_term,
                cost: ev.cost_term,
            },
            alternatives: eligible
                .into_iter()
                .map(|(i, s)| Alternative {
                    provider: cap.entries[i].name.clone(),
                    score: s,
                })
                .collect(),
            skipped: skipped_out,
        })
    }

    /// Checks one provider (docs/design.md §4 eligibility order) and computes its Q and H.
    fn evaluate(&self, topo: &Topology, p: &ProviderRt, request: &Request<'_>, ppm: i64, now: i64) -> Eval {
        let cost = p
            .cfg
            .price
            .map(|pr| pr.cost_micro_usd(request.input_tokens, request.output_tokens));
        let mut ev = Eval {
            skip: None,
            ready: Some(now),
            quota: 1.0,
            health: 1.0,
            latency: None,
            cost,
            latency_term: 1.0,
            cost_term: 1.0,
        };
        {
            let st = p.state.lock();
            ev.health = st.check(now, &topo.config.health, |reason, ready| ev.block(reason, ready));
            ev.latency = st.latency_ms;
        }
        let tau = topo.config.rate_tau_ms;
        let enforce = self.quotas_enforced();
        let mut r = 1.0f64;
        let mut t = f64::INFINITY;
        for q in &p.quotas {
            let n = units(q.cfg.dimension, request, cost);
            // A lock-free copy, refilled locally: deciding writes nothing.
            let mut b = q.bucket.read();
            b.sync(now);
            match b.fits(n, ppm, now) {
                Fit::Yes => {}
                _ if !enforce => {}
                Fit::Later(wait) => ev.block(SkipReason::Quota(q.cfg.dimension), wait.map(|w| now.saturating_add(w))),
                Fit::TooLarge => ev.block(SkipReason::QuotaTooLarge(q.cfg.dimension), None),
            }
            r = r.min(b.fraction_after(n));
            t = t.min(b.seconds_to_empty(n, now, tau));
        }
        ev.quota = (r - scoring::anticipation_penalty(t)).max(0.0);
        ev
    }

    /// Re-checks (when `check`) and charges one provider under its locks (provider, then
    /// buckets in global order). `None` when it no longer fits. Without `check` it charges
    /// what a shared store has already reserved.
    #[allow(clippy::too_many_arguments)]
    fn reserve(
        &self,
        topo: &Topology,
        p: &Arc<ProviderRt>,
        request: &Request<'_>,
        ppm: i64,
        cost: Option<u64>,
        now: i64,
        check: bool,
    ) -> Option<PermitRecord> {
        let mut st = p.state.lock();
        if check {
            let mut blocked = false;
            st.check(now, &topo.config.health, |_, _| blocked = true);
            if blocked {
                return None;
            }
        }
        let check_quotas = check && self.quotas_enforced();
        let mut guards: Vec<(usize, BucketGuard<'_>)> =
            p.lock_order.iter().map(|&i| (i, p.quotas[i].bucket.lock())).collect();
        let mut charges = vec![0i64; p.quotas.len()];
        for (i, b) in guards.iter_mut() {
            let n = units(p.quotas[*i].cfg.dimension, request, cost);
            b.sync(now);
            if check_quotas && b.fits(n, ppm, now) != Fit::Yes {
                return None;
            }
            charges[*i] = n;
        }
        for (i, b) in guards.iter_mut() {
            b.charge(charges[*i], now, topo.config.rate_tau_ms);
        }
        drop(guards);
        let probe = st.circuit(now) == CircuitState::HalfOpen;
        if probe {
            st.probe_out = true;
        }
        st.live_permits += 1;
        let charges: Arc<[i64]> = Arc::from(charges);
        let flight = st.in_flight.add(now, charges.clone());
        Some(PermitRecord {
            provider: p.clone(),
            probe,
            input_est: request.input_tokens,
            output_est: request.output_tokens,
            charges,
            granted_at: now,
            flight,
            instance: 0,
        })
    }
}

impl Eval {
    fn skip(reason: SkipReason) -> Eval {
        Eval {
            skip: Some(reason),
            ready: None,
            quota: 0.0,
            health: 0.0,
            latency: None,
            cost: None,
            latency_term: 1.0,
            cost_term: 1.0,
        }
    }

    /// Records a blocker: the first one is the skip reason; the ready time is the latest
    /// predictable one, or none once any blocker is unpredictable.
    fn block(&mut self, reason: SkipReason, ready: Option<i64>) {
        if self.skip.is_none() {
            self.skip = Some(reason);
        }
        self.ready = match (self.ready, ready) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
}

/// The error of a decision that should have been a refusal: everything looked eligible but
/// nothing could be reserved, so every provider is reported as skipped by what was found.
fn refused(decision: Result<Decision>) -> Error {
    match decision {
        Err(e) => e,
        Ok(d) => Error::NoAvailableProvider {
            retry_after_ms: None,
            skipped: d.skipped,
        },
    }
}

/// Units a request takes from a quota of `dim`.
pub(crate) fn units(dim: Dimension, r: &Request<'_>, cost: Option<u64>) -> i64 {
    match dim {
        Dimension::Requests | Dimension::Concurrency => 1,
        Dimension::Tokens => to_i64(r.input_tokens.saturating_add(r.output_tokens)),
        Dimension::InputTokens => to_i64(r.input_tokens),
        Dimension::OutputTokens => to_i64(r.output_tokens),
        Dimension::Cost => to_i64(cost.unwrap_or(0)),
    }
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
