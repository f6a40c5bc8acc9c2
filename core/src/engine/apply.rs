//! Applying what a call did (docs/design.md §4, §6, §7): settlement deltas, holds, the
//! circuit signal and header calibration, built by `complete`, `cancel`, `observe` and
//! `sync_headers` as one [`Change`] and applied by one [`Engine::apply`].

use std::sync::atomic::Ordering;

use super::decide::to_i64;
use super::{Engine, PermitRecord, release};
use crate::call::{Outcome, PermitId};
use crate::config::{Config, Price, Settle, Tokens};
use crate::error::Result;
use crate::health::Reporter;
use crate::signals::{self, HeaderReport};
use crate::store::redis::Shared;
use crate::store::{Calibration, Change, Deltas, Reported, UNSENT_MAX, Unsent};
use crate::topology::{ProviderRt, Topology};
use crate::vocab::{Dimension, Status};

impl Engine {
    /// Applies a change of one provider's state, in order: shares it (with the Redis store),
    /// applies the deltas, the hold and the circuit signal, lets `permit` go (its slot and
    /// probe), applies the calibration, then adopts what Redis answered.
    ///
    /// When Redis does not answer, a change that is not a shared permit's settlement follows
    /// the `on_error` mode (an error in `closed` mode, and then nothing is applied); a shared
    /// permit's settlement is applied here and kept to send when Redis answers again, in every
    /// mode, so that its slot and units are not left behind in Redis.
    pub(crate) fn apply(
        &self,
        topo: &Topology,
        p: &ProviderRt,
        change: &Change,
        permit: Option<&PermitRecord>,
        now: i64,
    ) -> Result<()> {
        let post = match &self.shared {
            None => None,
            Some(sh) => {
                let keep = change.permit.is_some();
                let sent = match sh.ready(&self.clock, topo) {
                    Ok(true) => {
                        self.send_unsent(sh, topo, now);
                        sh.send(&self.clock, topo, p, change, now)
                            .map_err(|fail| sh.failed(topo, fail))
                    }
                    Ok(false) => Err(Ok(())),
                    Err(e) => Err(Err(e)),
                };
                match sent {
                    Ok(post) => Some(post),
                    Err(_) if keep => {
                        self.keep_unsent(Unsent::Settlement {
                            provider: p.cfg.name.clone(),
                            change: Box::new(change.clone()),
                        });
                        None
                    }
                    Err(failed) => {
                        failed?;
                        None
                    }
                }
            }
        };
        apply_deltas(p, &change.deltas, now, topo.config.rate_tau_ms);
        let calibrates = change.calibration.iter().any(|r| !r.is_empty());
        if change.hold.is_some() || change.signal.is_some() || permit.is_some() || calibrates {
            let mut st = p.state.lock();
            if let Some(until) = change.hold {
                st.hold(until);
            }
            if let Some(signal) = change.signal {
                st.record(signal, now, p.cfg.cooldown_ms, &topo.config.health);
            }
            if let Some(record) = permit {
                release(&mut st, record);
            }
            // Under the provider's lock (then the buckets', the order `reserve` takes them in),
            // so no permit is granted between reading what is in flight and calibrating.
            for (i, (q, reported)) in p.quotas.iter().zip(&change.calibration).enumerate() {
                if reported.is_empty() {
                    continue;
                }
                let mut b = q.bucket.lock();
                b.sync(now);
                if let Some(limit) = reported.limit {
                    b.learn_limit(limit);
                }
                if let Some(remaining) = reported.remaining {
                    let reserved = change.point.map_or(0, |t| st.in_flight.reserved_since(t, i));
                    b.calibrate(remaining, reserved);
                }
            }
        }
        if change.header_errors > 0 {
            self.header_errors
                .fetch_add(u64::from(change.header_errors), Ordering::Relaxed);
        }
        if let Some(post) = post {
            post.adopt(p);
        }
        Ok(())
    }

    /// Keeps something Redis has not received, to send when it answers again; the oldest is
    /// dropped (and counted) beyond [`UNSENT_MAX`].
    pub(crate) fn keep_unsent(&self, entry: Unsent) {
        let mut unsent = self.unsent.lock();
        if unsent.len() >= UNSENT_MAX {
            unsent.pop_front();
            self.unsent_dropped.fetch_add(1, Ordering::Relaxed);
        }
        unsent.push_back(entry);
    }

    /// Sends, in order, what Redis has not received (taken out under the lock, sent with no
    /// lock held); what cannot be sent goes back in front, in order.
    pub(crate) fn send_unsent(&self, sh: &Shared, topo: &Topology, now: i64) {
        if self.unsent.lock().is_empty() {
            return;
        }
        let mut todo = std::mem::take(&mut *self.unsent.lock());
        while let Some(entry) = todo.pop_front() {
            let sent = match &entry {
                Unsent::Settlement { provider, change } => match topo.providers.get(provider) {
                    // A provider removed since: nothing of it is left to settle.
                    None => Ok(()),
                    Some(p) => sh.send(&self.clock, topo, p, change, now).map(|post| post.adopt(p)),
                },
                Unsent::Release { permit } => sh.release(&self.clock, topo, *permit, now),
            };
            if let Err(fail) = sent {
                let _ = sh.failed(topo, fail);
                todo.push_front(entry);
                let mut unsent = self.unsent.lock();
                todo.extend(unsent.drain(..));
                *unsent = todo;
                return;
            }
        }
    }

    /// Applies the change of a permit taken from the table; on an error the permit is put back
    /// (a failed call changes nothing) and the error returned.
    pub(crate) fn settle(
        &self,
        topo: &Topology,
        permit: PermitId,
        deadline: i64,
        record: PermitRecord,
        mut change: Change,
        now: i64,
    ) -> Result<()> {
        // A permit granted while degraded is not in Redis: its deltas stay local.
        change.permit = (record.instance != 0).then_some((record.instance, permit.0));
        change.local_deltas = record.instance == 0;
        match self.apply(topo, &record.provider, &change, Some(&record), now) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.permits.insert(permit.0, deadline, record);
                Err(e)
            }
        }
    }

    /// What `complete` changes: the settlement deltas, the hold, the signal, the headers.
    pub(crate) fn settlement(&self, record: &PermitRecord, outcome: &Outcome, now: i64, cfg: &Config) -> Change {
        let report = signals::parse(&outcome.headers, now);
        let retry_after = outcome.retry_after().or(report.retry_after_ms);
        let reporter = if record.probe {
            Reporter::Probe
        } else {
            Reporter::Permit
        };
        let (calibration, header_errors) = calibration(&record.provider, &report);
        Change {
            permit: None,
            local_deltas: false,
            deltas: settle_deltas(record, outcome),
            hold: hold_until(outcome.status, retry_after, now, cfg),
            signal: outcome
                .status
                .informs_health()
                .then(|| outcome.signal(reporter, retry_after)),
            calibration,
            point: Some(record.granted_at),
            header_errors,
        }
    }

    /// What `observe` changes: usage charged to every rate quota, the hold, the signal, the
    /// headers. `usage` is (input, output, requests).
    pub(crate) fn observation(
        &self,
        p: &ProviderRt,
        outcome: &Outcome,
        (input, output, requests): (u64, u64, u64),
        now: i64,
        cfg: &Config,
    ) -> Change {
        let deltas: Deltas = p
            .quotas
            .iter()
            .map(|q| {
                let count_cached = q.cfg.count_cached;
                to_i64(match q.cfg.dimension {
                    Dimension::Concurrency => 0,
                    Dimension::Requests => requests,
                    Dimension::Tokens => outcome.counted_input(input, count_cached).saturating_add(output),
                    Dimension::InputTokens => outcome.counted_input(input, count_cached),
                    Dimension::OutputTokens => output,
                    Dimension::Cost => p
                        .cfg
                        .price
                        .map(|pr| {
                            pr.cost_with_cache(Tokens {
                                input,
                                cached_input: outcome.cached_input_tokens.unwrap_or(0),
                                cache_write_input: outcome.cache_write_input_tokens.unwrap_or(0),
                                output,
                            })
                        })
                        .unwrap_or(0),
                })
            })
            .collect();
        let report = signals::parse(&outcome.headers, now);
        let retry_after = outcome.retry_after().or(report.retry_after_ms);
        let (calibration, header_errors) = calibration(p, &report);
        Change {
            permit: None,
            local_deltas: false,
            deltas,
            hold: hold_until(outcome.status, retry_after, now, cfg),
            signal: outcome
                .status
                .informs_health()
                .then(|| outcome.signal(Reporter::Observe, retry_after)),
            calibration,
            point: Some(now.saturating_sub(to_i64(outcome.latency_ms))),
            header_errors,
        }
    }

    /// What `sync_headers` changes: the hold and the calibration.
    pub(crate) fn header_report<K: AsRef<str>, V: AsRef<str>>(
        &self,
        p: &ProviderRt,
        headers: &[(K, V)],
        now: i64,
        cfg: &Config,
    ) -> Change {
        let report = signals::parse(headers, now);
        let (calibration, header_errors) = calibration(p, &report);
        Change {
            permit: None,
            local_deltas: false,
            deltas: p.quotas.iter().map(|_| 0).collect(),
            hold: report.retry_after_ms.map(|ms| held_until(ms, now, cfg)),
            signal: None,
            calibration,
            point: None,
            header_errors,
        }
    }
}

/// What `cancel` changes: every reservation refunded, nothing else.
pub(crate) fn refund(record: &PermitRecord) -> Change {
    Change {
        permit: None,
        local_deltas: false,
        deltas: record.charges.iter().map(|&c| -c).collect(),
        hold: None,
        signal: None,
        calibration: Calibration::new(),
        point: None,
        header_errors: 0,
    }
}

/// What headers report for each quota of the provider (docs/design.md §7): every matching quota
/// with the shortest window of a reported dimension is calibrated. Also returns the count of
/// malformed values, except those of a dimension the provider does not limit (ignored entirely).
fn calibration(p: &ProviderRt, report: &HeaderReport) -> (Calibration, u32) {
    if report.is_empty() {
        return (Calibration::new(), 0);
    }
    let mut out: Calibration = p.quotas.iter().map(|_| Reported::default()).collect();
    let mut errors = report.retry_errors;
    for (dim, d) in signals::REPORTED.iter().zip(&report.dimensions) {
        let matching = || p.quotas.iter().enumerate().filter(|(_, q)| q.cfg.dimension == *dim);
        let Some(shortest) = matching().map(|(_, q)| q.cfg.window_ms).min() else {
            continue;
        };
        errors += d.errors;
        if d.limit.is_none() && d.remaining.is_none() {
            continue;
        }
        for (i, _) in matching().filter(|(_, q)| q.cfg.window_ms == shortest) {
            out[i] = Reported {
                limit: d.limit,
                remaining: d.remaining,
            };
        }
    }
    (out, errors)
}

/// The hold an outcome asks for: its retry-after (the outcome's own, else its headers'), or
/// `overload_hold_ms` for `overloaded` without one. A success, or an interrupted call (its
/// response was a success until it stopped), never holds.
fn hold_until(status: Status, retry_after: Option<i64>, now: i64, cfg: &Config) -> Option<i64> {
    if matches!(status, Status::Success | Status::Interrupted) {
        return None;
    }
    match retry_after {
        Some(ms) => Some(held_until(ms, now, cfg)),
        None if status == Status::Overloaded && cfg.health.overload_hold_ms > 0 => {
            Some(held_until(cfg.health.overload_hold_ms, now, cfg))
        }
        None => None,
    }
}

/// The end of a hold of `ms` from `now`: at most `max_hold_ms` (a retry-after of years, say
/// `9223372036854775` seconds or an HTTP date in 9999, holds one hour by default).
fn held_until(ms: i64, now: i64, cfg: &Config) -> i64 {
    now.saturating_add(ms.min(cfg.health.max_hold_ms))
}

/// Settlement of a permit (docs/design.md §4): per quota, the units to charge or refund.
/// Requests stay charged; the concurrency slot is released; a reported dimension is charged
/// `actual − reserved` (never below the reservation with `settle: reserved`); an unreported one
/// keeps its estimate, except that a no-work outcome refunds it.
fn settle_deltas(record: &PermitRecord, outcome: &Outcome) -> Deltas {
    let provider = &record.provider;
    provider
        .quotas
        .iter()
        .zip(record.charges.iter())
        .map(|(q, &reserved)| match q.cfg.dimension {
            Dimension::Requests => 0,
            Dimension::Concurrency => -1,
            dim => match actual_units(dim, outcome, record, provider.cfg.price.as_ref(), q.cfg.count_cached) {
                Some(actual) => match q.cfg.settle {
                    Settle::Reserved => actual.max(reserved) - reserved,
                    Settle::Actual => actual - reserved,
                },
                None if outcome.status.is_no_work() => -reserved,
                None => 0,
            },
        })
        .collect()
}

/// Applies per-quota deltas to the provider's buckets (charges update ρ).
fn apply_deltas(p: &ProviderRt, deltas: &[i64], now: i64, tau_ms: i64) {
    // A zero delta changes nothing (a refill is the same whenever it is computed).
    for (q, &delta) in p.quotas.iter().zip(deltas).filter(|(_, d)| **d != 0) {
        let mut b = q.bucket.lock();
        b.sync(now);
        if delta > 0 {
            b.charge(delta, now, tau_ms);
        } else {
            b.refund(-delta);
        }
    }
}

/// Reported usage in `dim`, or `None` when the outcome does not report it (docs/design.md §4, §12).
fn actual_units(
    dim: Dimension,
    o: &Outcome,
    rec: &PermitRecord,
    price: Option<&Price>,
    count_cached: bool,
) -> Option<i64> {
    let reported = o.input_tokens.is_some() || o.output_tokens.is_some();
    let input = o.input_tokens.map(|i| o.counted_input(i, count_cached));
    let n = match dim {
        Dimension::InputTokens => input?,
        Dimension::OutputTokens => o.output_tokens?,
        Dimension::Tokens if reported => input
            .unwrap_or(rec.input_est)
            .saturating_add(o.output_tokens.unwrap_or(rec.output_est)),
        // Cache reads and writes count only beside reported input (docs/design.md §3, §12).
        Dimension::Cost if reported => price?.cost_with_cache(Tokens {
            input: o.input_tokens.unwrap_or(rec.input_est),
            cached_input: o.input_tokens.and(o.cached_input_tokens).unwrap_or(0),
            cache_write_input: o.input_tokens.and(o.cache_write_input_tokens).unwrap_or(0),
            output: o.output_tokens.unwrap_or(rec.output_est),
        }),
        _ => return None,
    };
    Some(to_i64(n))
}
