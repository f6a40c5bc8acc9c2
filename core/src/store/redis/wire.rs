//! The script's wire format: the arguments of one call ([`Args`]) and the reply read in order
//! ([`Reader`]), with the bucket and provider states Redis answers with. Only the Redis module
//! knows these types; the mirror turns them into plain setter calls on the domain types.

use super::Fail;
use crate::config::{Algorithm, HealthConfig, QuotaConfig, Settle};
use crate::health::{Reporter, Signal};
use crate::vocab::{Dimension, Status};

/// One value of a reply: the script answers with integers and strings only.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Item {
    Int(i64),
    Str(String),
}

/// A bucket's state as Redis has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BucketReply {
    pub cap: i64,
    pub learned: Option<i64>,
    pub level: i64,
    pub at: i64,
}

/// A provider's shared state as Redis has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProviderReply {
    pub hold: Option<i64>,
    pub failures: i64,
    pub tripped_until: Option<i64>,
    pub k: i32,
    pub probe_busy: bool,
}

/// Reads a reply in order.
pub(crate) struct Reader {
    items: std::vec::IntoIter<Item>,
}

impl Reader {
    pub fn new(items: std::vec::IntoIter<Item>) -> Self {
        Reader { items }
    }

    pub fn int(&mut self) -> Result<i64, Fail> {
        match self.items.next() {
            Some(Item::Int(n)) => Ok(n),
            Some(Item::Str(s)) => s
                .parse()
                .map_err(|_| Fail::Unavailable(format!("unexpected reply value '{s}'"))),
            None => Err(Fail::Unavailable("reply too short".into())),
        }
    }

    fn opt_int(&mut self) -> Result<Option<i64>, Fail> {
        match self.items.next() {
            Some(Item::Str(s)) if s.is_empty() => Ok(None),
            Some(Item::Int(n)) => Ok(Some(n)),
            Some(Item::Str(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| Fail::Unavailable(format!("unexpected reply value '{s}'"))),
            None => Err(Fail::Unavailable("reply too short".into())),
        }
    }

    pub fn bucket(&mut self) -> Result<BucketReply, Fail> {
        let cap = self.int()?;
        let learned = self.int()?;
        Ok(BucketReply {
            cap,
            learned: (learned > 0).then_some(learned),
            level: self.int()?,
            at: self.int()?,
        })
    }

    pub fn provider(&mut self) -> Result<ProviderReply, Fail> {
        Ok(ProviderReply {
            hold: self.opt_int()?,
            failures: self.int()?,
            tripped_until: self.opt_int()?,
            k: i32::try_from(self.int()?).unwrap_or(i32::MAX),
            probe_busy: self.int()? != 0,
        })
    }

    /// Every reply starts with the server's ms and one integer that depends on the operation
    /// (the instance number, the chosen candidate, whether the permit was known): both, and the
    /// rest.
    pub fn head(mut self) -> Result<(i64, i64, Reader), Fail> {
        let ms = self.int()?;
        let third = self.int()?;
        Ok((ms, third, self))
    }
}

/// Arguments of one script call.
#[derive(Default)]
pub(crate) struct Args(pub Vec<String>);

impl Args {
    /// A call of `op` at `now` (`None`: at the server's clock, before the engine has read it)
    /// by an engine registered in `epoch` (the script answers 'reset' when Redis's epoch is
    /// another: it lost the state that engine registered).
    pub fn new(op: &str, now: Option<i64>, gc_ms: i64, epoch: i64) -> Args {
        let now = now.map_or_else(|| "server".to_string(), |n| n.to_string());
        Args(vec![op.to_string(), now, gc_ms.to_string(), epoch.to_string()])
    }

    /// A name that becomes part of a Redis key (a provider name), escaped by [`key_part`].
    pub fn name(&mut self, v: &str) -> &mut Self {
        self.0.push(key_part(v));
        self
    }

    pub fn s(&mut self, v: &str) -> &mut Self {
        self.0.push(v.to_string());
        self
    }

    pub fn n(&mut self, v: i64) -> &mut Self {
        self.0.push(v.to_string());
        self
    }

    /// A bucket's spec: key, identity, compatibility, kind, configured limit, window, offset.
    pub fn bucket(&mut self, q: &QuotaConfig) -> &mut Self {
        let alg = match q.algorithm {
            Algorithm::TokenBucket => "token_bucket",
            Algorithm::FixedWindow => "fixed_window",
        };
        let settle = match q.settle {
            Settle::Actual => "actual",
            Settle::Reserved => "reserved",
        };
        let dim = q.dimension.as_str();
        let kind = match (q.dimension, q.algorithm) {
            (Dimension::Concurrency, _) => "c",
            (_, Algorithm::FixedWindow) => "f",
            (_, Algorithm::TokenBucket) => "b",
        };
        self.0.push(key_part(&q.key));
        self.0.push(format!(
            "{dim}|{}|{}|{alg}|{settle}|{}|{}",
            q.limit, q.window_ms, q.offset_ms, q.count_cached
        ));
        self.0.push(format!("{dim}|{}|{alg}", q.window_ms));
        self.0.push(kind.to_string());
        self.n(q.limit).n(q.window_ms).n(q.offset_ms)
    }
}

/// The circuit's cooldown for each re-open count `k`, until it reaches the cap (the script
/// uses the last one beyond): computed here so that it is the memory store's float arithmetic.
pub(crate) fn cooldowns(cooldown_ms: i64, cfg: &HealthConfig) -> Vec<i64> {
    let mut out = Vec::new();
    for k in 0..64 {
        let d = crate::health::cooldown(cooldown_ms, k, cfg);
        out.push(d);
        if d >= cfg.max_cooldown_ms {
            break;
        }
    }
    out
}

/// An outcome's circuit signal as the script reads it: 'h' hold only, 's' success, 'f' failure,
/// 'c' client error, 'n' nothing; and who reports it: 'p' a probe, 'm' a permit, 'o' an
/// observation.
pub(crate) fn signal_letters(signal: Option<&Signal>) -> (&'static str, &'static str) {
    let Some(s) = signal else { return ("n", "o") };
    let sig = if s.hold_only() {
        "h"
    } else if s.status == Status::Success {
        "s"
    } else if s.status.is_failure() {
        "f"
    } else {
        "c"
    };
    let rep = match s.reporter {
        Reporter::Probe => "p",
        Reporter::Permit => "m",
        Reporter::Observe => "o",
    };
    (sig, rep)
}

/// Escapes a part of a Redis key (the prefix, a quota key, a provider name): `%`, `{`, `}`, `:`
/// and control characters become `%XX`. Every key the script builds is `{prefix}:<kind>:<part>`
/// from escaped parts, so no two distinct (prefix, part) pairs give one key, no part can end
/// the hash tag (the Cluster slot), and no part can split the tab-joined permit records.
pub(crate) fn key_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '{' | '}' | ':') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::key_part;

    #[test]
    fn key_parts_cannot_collide_or_escape_the_hash_tag() {
        assert_eq!(key_part("gpt-4o/org"), "gpt-4o/org");
        assert_eq!(key_part("a}:b:x"), "a%7D%3Ab%3Ax");
        assert_eq!(key_part("tab\there"), "tab%09here");
        assert_eq!(key_part("100%"), "100%25");
        // The pairs that shared one bucket before: prefix + ":b:" + key.
        let key = |prefix: &str, k: &str| format!("{{{}}}:b:{}", key_part(prefix), key_part(k));
        assert_ne!(key("a", "x}:b:y"), key("a}:b:x", "y"));
        for k in [key("a", "x}:b:y"), key("a}:b:x", "y")] {
            assert_eq!(k.matches('}').count(), 1, "{k}");
            assert!(!k.contains('\t'));
        }
    }
}
