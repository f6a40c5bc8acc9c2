//! Text formats the real APIs use in their headers and bodies: Go durations (OpenAI's
//! `x-ratelimit-reset-*`), RFC 3339 instants (Anthropic's `anthropic-ratelimit-*-reset`),
//! base64 (embeddings with `encoding_format: base64`) and JSON string escaping.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as a float (0 if the clock is before 1970).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Like Go's `time.Duration.String()` at millisecond precision, rounded up, as OpenAI writes
/// its resets: `0s`, `20ms`, `1s`, `1.428s`, `6m0s`, `1h2m3.5s`.
pub fn go_duration(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0 - 1e-6).ceil();
    if !ms.is_finite() || ms <= 0.0 {
        return "0s".into();
    }
    let ms = ms.min(1e15) as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, sms) = (rem / 60_000, rem % 60_000);
    let (whole, frac) = (sms / 1000, sms % 1000);
    let s = if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:03}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// A UTC RFC 3339 instant at second precision, rounded up: `2026-12-02T10:00:05Z`.
pub fn rfc3339(epoch_s: f64) -> String {
    let t = (epoch_s - 1e-6).ceil().max(0.0) as i64;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Standard base64 (with padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        out.push(char::from(A[(n >> 18) as usize & 63]));
        out.push(char::from(A[(n >> 12) as usize & 63]));
        out.push(if c.len() > 1 {
            char::from(A[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            char::from(A[n as usize & 63])
        } else {
            '='
        });
    }
    out
}

/// Appends `s` to `out` as a JSON string literal (quotes included).
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_as_openai_writes_them() {
        assert_eq!(go_duration(0.0), "0s");
        assert_eq!(go_duration(0.02), "20ms");
        assert_eq!(go_duration(0.0201), "21ms");
        assert_eq!(go_duration(1.0), "1s");
        assert_eq!(go_duration(1.428), "1.428s");
        assert_eq!(go_duration(1.2), "1.2s");
        assert_eq!(go_duration(360.0), "6m0s");
        assert_eq!(go_duration(3723.5), "1h2m3.5s");
    }

    #[test]
    fn rfc3339_rounds_up_to_the_second() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(0.2), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599.5), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn base64_and_json_strings() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let mut s = String::new();
        json_str(&mut s, "a\"b\\\n\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\\\n\\u0001é\"");
    }
}
