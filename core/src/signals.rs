//! Provider signals: what the response headers of OpenAI- and Anthropic-style APIs say about
//! quota left, limits and when to come back (docs/design.md §6–§7, §12).
//!
//! Parsing never fails: a malformed value is ignored and counted (the engine adds the count to
//! `header_errors`, except for dimensions the provider does not limit, which are ignored
//! entirely). Header names are case-insensitive; when a name appears twice, the last wins.
//!
//! | header | meaning |
//! |---|---|
//! | `retry-after-ms` | hold for this many ms (a decimal rounds up); wins over `retry-after` |
//! | `retry-after` | hold for this many seconds (fractional allowed), or until an HTTP date, measured against the response's `date` header when present, else the engine clock |
//! | `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` | OpenAI style; resets are durations (`1s`, `6m0s`, `1.428s`, `20ms`, `1h2m3.5s`) |
//! | `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}` | Anthropic style; resets are RFC 3339 instants |
//!
//! Resets are validated (a malformed one counts as an error) and otherwise unused: providers
//! replenish continuously, so a reset is the time to full, not a wall.

use crate::vocab::Dimension;

/// The dimensions providers report, in a fixed order.
pub(crate) const REPORTED: [Dimension; 4] = [
    Dimension::Requests,
    Dimension::Tokens,
    Dimension::InputTokens,
    Dimension::OutputTokens,
];

/// What headers say about one dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DimensionReport {
    /// Reported limit (> 0).
    pub limit: Option<i64>,
    /// Reported remaining units (≥ 0).
    pub remaining: Option<i64>,
    /// Malformed values among this dimension's headers.
    pub errors: u32,
}

/// Everything a set of headers says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeaderReport {
    /// Delay before the provider may be called again, in ms from now (`None`: no retry-after,
    /// or one of 0).
    pub retry_after_ms: Option<i64>,
    /// Malformed `retry-after-ms`, `retry-after` or (when it was needed) `date` values.
    pub retry_errors: u32,
    /// Per dimension, in the order of [`REPORTED`].
    pub dimensions: [DimensionReport; 4],
}

impl HeaderReport {
    /// Whether the headers carry anything ratewise uses.
    pub fn is_empty(&self) -> bool {
        *self == HeaderReport::default()
    }
}

#[derive(Clone, Copy)]
enum Field {
    Limit,
    Remaining,
    Reset(ResetFormat),
}

#[derive(Clone, Copy)]
enum ResetFormat {
    Duration,
    Instant,
}

/// Whether `name` (any case) is a header the engine reads: `retry-after`, `retry-after-ms`,
/// `date`, or one of the OpenAI and Anthropic rate-limit families (docs/design.md §7). A
/// caller that must copy headers across a boundary copies exactly these.
///
/// ```
/// assert!(ratewise::is_signal_header("X-RateLimit-Remaining-Tokens"));
/// assert!(ratewise::is_signal_header("retry-after"));
/// assert!(!ratewise::is_signal_header("content-type"));
/// ```
pub fn is_signal_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("retry-after-ms")
        || name.eq_ignore_ascii_case("retry-after")
        || name.eq_ignore_ascii_case("date")
        || classify(name).is_some()
}

/// Parses response headers at engine time `now_ms` (the reference for HTTP dates when the
/// response has no `date` header).
pub(crate) fn parse<K: AsRef<str>, V: AsRef<str>>(headers: &[(K, V)], now_ms: i64) -> HeaderReport {
    let mut report = HeaderReport::default();
    let mut retry_ms: Option<&str> = None;
    let mut retry: Option<&str> = None;
    let mut date: Option<&str> = None;
    // (dimension index, field) → last value.
    let mut fields: Vec<(usize, Field, &str)> = Vec::with_capacity(headers.len().min(16));
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        if name.eq_ignore_ascii_case("retry-after-ms") {
            retry_ms = Some(value);
        } else if name.eq_ignore_ascii_case("retry-after") {
            retry = Some(value);
        } else if name.eq_ignore_ascii_case("date") {
            date = Some(value);
        } else if let Some((dim, field)) = classify(name) {
            fields.retain(|(d, f, _)| !(*d == dim && same_field(f, &field)));
            fields.push((dim, field, value));
        }
    }

    // retry-after-ms wins when both are present (a malformed one falls back to retry-after).
    let mut delay: Option<i64> = None;
    if let Some(v) = retry_ms {
        match parse_decimal(v, 1) {
            Some(ms) => delay = Some(ms),
            None => report.retry_errors += 1,
        }
    }
    if let Some(v) = retry {
        let parsed = match parse_decimal(v, 1000) {
            Some(ms) => Some(ms),
            None => parse_http_date(v).map(|at| {
                // An absolute instant: against the response's own date when it has one, so
                // a skewed local clock does no harm.
                let reference = match date.map(parse_http_date) {
                    Some(Some(d)) => d,
                    Some(None) => {
                        report.retry_errors += 1;
                        now_ms
                    }
                    None => now_ms,
                };
                at.saturating_sub(reference).max(0)
            }),
        };
        match parsed {
            Some(ms) if delay.is_none() => delay = Some(ms),
            Some(_) => {}
            None => report.retry_errors += 1,
        }
    }
    report.retry_after_ms = delay.filter(|ms| *ms > 0);

    for (dim, field, value) in fields {
        let d = &mut report.dimensions[dim];
        let ok = match field {
            Field::Limit => match parse_int(value) {
                Some(n) if n > 0 => {
                    d.limit = Some(n);
                    true
                }
                _ => false,
            },
            Field::Remaining => match parse_int(value) {
                Some(n) => {
                    d.remaining = Some(n);
                    true
                }
                None => false,
            },
            Field::Reset(ResetFormat::Duration) => parse_duration_ms(value).is_some(),
            Field::Reset(ResetFormat::Instant) => parse_rfc3339(value).is_some(),
        };
        if !ok {
            d.errors += 1;
        }
    }
    report
}

fn same_field(a: &Field, b: &Field) -> bool {
    matches!(
        (a, b),
        (Field::Limit, Field::Limit) | (Field::Remaining, Field::Remaining) | (Field::Reset(_), Field::Reset(_))
    )
}

/// The rate-limit headers, by name: OpenAI's `x-ratelimit-{limit|remaining|reset}-{requests|tokens}`
/// and Anthropic's `anthropic-ratelimit-{requests|tokens|input-tokens|output-tokens}-{limit|remaining|reset}`,
/// each with its index into [`REPORTED`] and its field.
const RATE_LIMIT_HEADERS: [(&str, usize, Field); 18] = {
    const D: Field = Field::Reset(ResetFormat::Duration);
    const I: Field = Field::Reset(ResetFormat::Instant);
    const L: Field = Field::Limit;
    const R: Field = Field::Remaining;
    [
        ("x-ratelimit-limit-requests", 0, L),
        ("x-ratelimit-remaining-requests", 0, R),
        ("x-ratelimit-reset-requests", 0, D),
        ("x-ratelimit-limit-tokens", 1, L),
        ("x-ratelimit-remaining-tokens", 1, R),
        ("x-ratelimit-reset-tokens", 1, D),
        ("anthropic-ratelimit-requests-limit", 0, L),
        ("anthropic-ratelimit-requests-remaining", 0, R),
        ("anthropic-ratelimit-requests-reset", 0, I),
        ("anthropic-ratelimit-tokens-limit", 1, L),
        ("anthropic-ratelimit-tokens-remaining", 1, R),
        ("anthropic-ratelimit-tokens-reset", 1, I),
        ("anthropic-ratelimit-input-tokens-limit", 2, L),
        ("anthropic-ratelimit-input-tokens-remaining", 2, R),
        ("anthropic-ratelimit-input-tokens-reset", 2, I),
        ("anthropic-ratelimit-output-tokens-limit", 3, L),
        ("anthropic-ratelimit-output-tokens-remaining", 3, R),
        ("anthropic-ratelimit-output-tokens-reset", 3, I),
    ]
};

/// Recognises an OpenAI or Anthropic rate-limit header: (index into [`REPORTED`], field).
fn classify(name: &str) -> Option<(usize, Field)> {
    // Case-insensitive without lowercasing a copy: this runs for every header of every response.
    // Most names are not one of these: a length or a first byte rules them out before any compare.
    let first = name.as_bytes().first()?.to_ascii_lowercase();
    if (first != b'x' && first != b'a') || !(24..=43).contains(&name.len()) {
        return None;
    }
    RATE_LIMIT_HEADERS
        .iter()
        .find(|(known, _, _)| known.len() == name.len() && known.eq_ignore_ascii_case(name))
        .map(|&(_, dim, field)| (dim, field))
}

/// A non-negative integer (surrounding spaces allowed).
fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A non-negative decimal number times `scale`, rounded up to a whole unit, exactly (no
/// floating point): `parse_decimal("1.0001", 1000)` is 1001.
fn parse_decimal(s: &str, scale: i64) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.ends_with('.') && frac.is_empty() && int.is_empty() {
        return None;
    }
    let whole: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = whole.checked_mul(scale)?;
    // The fractional part times `scale`, rounded up.
    let frac = frac.trim_end_matches('0');
    if !frac.is_empty() {
        if frac.len() > 18 {
            // Beyond 18 digits only the round-up matters: compare the first 18.
            let head: i128 = frac[..18].parse().ok()?;
            let part = (head * scale as i128) / 10i128.pow(18);
            total = total.checked_add(part as i64 + 1)?;
        } else {
            let digits: i128 = frac.parse().ok()?;
            let den = 10i128.pow(frac.len() as u32);
            let num = digits * scale as i128;
            total = total.checked_add(((num + den - 1) / den) as i64)?;
        }
    }
    Some(total)
}

/// A duration as Go writes it (`time.Duration.String()`, which OpenAI's reset headers use) and
/// as people write it, in milliseconds: a sequence of decimal numbers, each with its unit, `h`,
/// `m`, `s`, `ms`, `us` (or `µs`), `ns` or `d` (a day). No sign, no spaces inside, no bare number.
///
/// ```
/// use ratewise::parse_duration_ms;
/// assert_eq!(parse_duration_ms("6m0s"), Some(360_000.0));
/// assert_eq!(parse_duration_ms("1h2m3.5s"), Some(3_723_500.0));
/// assert_eq!(parse_duration_ms("250ms"), Some(250.0));
/// assert_eq!(parse_duration_ms("1d"), Some(86_400_000.0));
/// assert_eq!(parse_duration_ms("6m0"), None); // every number needs its unit
/// ```
pub fn parse_duration_ms(text: &str) -> Option<f64> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        if number.is_empty() || number.matches('.').count() > 1 || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let factor = match &s[unit_start..i] {
            "d" => 86_400_000.0,
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += value * factor;
    }
    total.is_finite().then_some(total)
}

// RFC 3339 (Anthropic's resets) is parsed here: no dependency of the core reads it.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn valid_date(y: i64, m: i64, d: i64) -> bool {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12).contains(&m) && d >= 1 && d <= days[(m - 1) as usize]
}

fn unix_ms(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !valid_date(y, mo, d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + s * 1000)
}

fn num(s: &str, digits: std::ops::RangeInclusive<usize>) -> Option<i64> {
    (digits.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn clock(s: &str) -> Option<(i64, i64, i64)> {
    let mut it = s.split(':');
    let t = (
        num(it.next()?, 2..=2)?,
        num(it.next()?, 2..=2)?,
        num(it.next()?, 2..=2)?,
    );
    it.next().is_none().then_some(t)
}

/// An HTTP date (RFC 9110 §5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, and the
/// obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`
/// forms recipients must accept. Unix ms.
fn parse_http_date(s: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(s).ok()?;
    i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()
}

/// An RFC 3339 instant (`2025-01-15T14:24:00Z`, `2025-01-15T14:24:00.5+01:00`). Unix ms.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, mo, day) = (num(d.next()?, 4..=4)?, num(d.next()?, 2..=2)?, num(d.next()?, 2..=2)?);
    if d.next().is_some() {
        return None;
    }
    let (clock_part, offset_ms) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else {
        let pos = time.rfind(['+', '-'])?;
        let (t, off) = time.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (t, sign * (num(oh, 2..=2)? * 60 + num(om, 2..=2)?) * 60_000)
    };
    let (hms, frac) = clock_part.split_once('.').unwrap_or((clock_part, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (clock_part.contains('.') && frac.is_empty()) {
        return None;
    }
    let (h, mi, se) = clock(hms)?;
    let millis = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse::<i64>().ok()?
    };
    Some(unix_ms(y, mo, day, h, mi, se)? + millis - offset_ms)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn report(headers: &[(&str, &str)]) -> HeaderReport {
        parse(headers, 1_700_000_000_000)
    }

    /// `classify` as it was written first: on a lowercased copy of the name.
    fn classify_lowercased(name: &str) -> Option<(usize, Field)> {
        let lower = name.to_ascii_lowercase();
        let (rest, instant) = match lower.strip_prefix("x-ratelimit-") {
            Some(r) => (r, false),
            None => (lower.strip_prefix("anthropic-ratelimit-")?, true),
        };
        let (a, b) = if instant {
            rest.rsplit_once('-')?
        } else {
            rest.split_once('-')?
        };
        let (field, dim) = if instant { (b, a) } else { (a, b) };
        let field = match field {
            "limit" => Field::Limit,
            "remaining" => Field::Remaining,
            "reset" if instant => Field::Reset(ResetFormat::Instant),
            "reset" => Field::Reset(ResetFormat::Duration),
            _ => return None,
        };
        let dim = match (dim, instant) {
            ("requests", _) => 0,
            ("tokens", _) => 1,
            ("input-tokens", true) => 2,
            ("output-tokens", true) => 3,
            _ => return None,
        };
        Some((dim, field))
    }

    #[test]
    fn header_names_are_classified_ignoring_ascii_case_only() {
        let mut names = Vec::new();
        for prefix in [
            "x-ratelimit-",
            "X-RateLimit-",
            "anthropic-ratelimit-",
            "Anthropic-RateLimit-",
            "x-ratelimit",
            "ratelimit-",
        ] {
            for middle in [
                "limit-requests",
                "Remaining-Tokens",
                "reset-requests",
                "requests-limit",
                "Input-Tokens-Remaining",
                "output-tokens-reset",
                "tokens-limit",
                "limit-input-tokens",
                "remaining-",
                "-",
                "",
                "limit-requests-x",
                "ſimit-requests",
            ] {
                names.push(format!("{prefix}{middle}"));
            }
        }
        // Every field and dimension, in both orders, in two cases, under every prefix.
        for prefix in [
            "x-ratelimit-",
            "X-RATELIMIT-",
            "anthropic-ratelimit-",
            "ANTHROPIC-RateLimit-",
        ] {
            for field in ["limit", "remaining", "reset"] {
                for dim in ["requests", "tokens", "input-tokens", "output-tokens"] {
                    for middle in [format!("{field}-{dim}"), format!("{dim}-{field}")] {
                        names.push(format!("{prefix}{middle}"));
                        names.push(format!("{prefix}{}", middle.to_uppercase()));
                        names.push(format!("{prefix}{middle}s"));
                    }
                }
            }
        }
        names.extend(["x-ratelimit-ł", "ł", "", "date", "x-ratelimıt-limit-requests"].map(String::from));
        // The 18 names under two prefixes of each family in two cases each, and 14 above.
        assert_eq!(
            names.iter().filter(|n| classify_lowercased(n).is_some()).count(),
            18 * 2 * 2 + 14
        );
        for name in &names {
            let got = classify(name);
            let want = classify_lowercased(name);
            assert_eq!(got.is_some(), want.is_some(), "{name}");
            if let (Some((d, f)), Some((wd, wf))) = (got, want) {
                let tag = |f: &Field| match f {
                    Field::Limit => "limit",
                    Field::Remaining => "remaining",
                    Field::Reset(ResetFormat::Duration) => "reset duration",
                    Field::Reset(ResetFormat::Instant) => "reset instant",
                };
                assert!(d == wd && tag(&f) == tag(&wf), "{name}");
            }
        }
        assert_eq!(classify("X-RATELIMIT-LIMIT-TOKENS").map(|(d, _)| d), Some(1));
    }

    /// The sample values of OpenAI's rate-limit guide ("You can expect to see the following
    /// header fields"), as data.
    #[test]
    fn openai_documented_headers() {
        let r = report(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(
            r.dimensions[0],
            DimensionReport {
                limit: Some(60),
                remaining: Some(59),
                errors: 0
            }
        );
        assert_eq!(
            r.dimensions[1],
            DimensionReport {
                limit: Some(150_000),
                remaining: Some(149_984),
                errors: 0
            }
        );
        assert_eq!(r.retry_after_ms, None);
        assert_eq!(r.retry_errors, 0);
    }

    /// A chat-completions response as captured in OpenAI's community forum (usage-based
    /// variants of the names are not ours and are ignored).
    #[test]
    fn openai_captured_headers() {
        let r = report(&[
            ("x-ratelimit-limit-requests", "5000"),
            ("x-ratelimit-limit-tokens", "160000"),
            ("x-ratelimit-limit-tokens_usage_based", "160000"),
            ("x-ratelimit-remaining-requests", "4999"),
            ("x-ratelimit-remaining-tokens", "159976"),
            ("x-ratelimit-remaining-tokens_usage_based", "159976"),
            ("x-ratelimit-reset-requests", "12ms"),
            ("x-ratelimit-reset-tokens", "9ms"),
            ("x-ratelimit-reset-tokens_usage_based", "9ms"),
        ]);
        assert_eq!(r.dimensions[0].remaining, Some(4999));
        assert_eq!(
            r.dimensions[1],
            DimensionReport {
                limit: Some(160_000),
                remaining: Some(159_976),
                errors: 0
            }
        );
    }

    /// The header set of Anthropic's rate-limit documentation, plus the retry-after of a 429.
    #[test]
    fn anthropic_documented_headers() {
        let r = report(&[
            ("anthropic-ratelimit-requests-limit", "4000"),
            ("anthropic-ratelimit-requests-remaining", "3201"),
            ("anthropic-ratelimit-requests-reset", "2025-01-15T14:24:00Z"),
            ("anthropic-ratelimit-tokens-limit", "400000"),
            ("anthropic-ratelimit-tokens-remaining", "312000"),
            ("anthropic-ratelimit-tokens-reset", "2025-01-15T14:23:15Z"),
            ("anthropic-ratelimit-input-tokens-limit", "400000"),
            ("anthropic-ratelimit-input-tokens-remaining", "399000"),
            ("anthropic-ratelimit-input-tokens-reset", "2025-01-15T14:23:15Z"),
            ("anthropic-ratelimit-output-tokens-limit", "80000"),
            ("anthropic-ratelimit-output-tokens-remaining", "79500"),
            ("anthropic-ratelimit-output-tokens-reset", "2025-01-15T14:23:01Z"),
            ("retry-after", "60"),
        ]);
        assert_eq!(
            r.dimensions[0],
            DimensionReport {
                limit: Some(4000),
                remaining: Some(3201),
                errors: 0
            }
        );
        assert_eq!(r.dimensions[1].remaining, Some(312_000));
        assert_eq!(r.dimensions[2].remaining, Some(399_000));
        assert_eq!(
            r.dimensions[3],
            DimensionReport {
                limit: Some(80_000),
                remaining: Some(79_500),
                errors: 0
            }
        );
        assert_eq!(r.retry_after_ms, Some(60_000));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(report(&[("Retry-After", "2.5")]).retry_after_ms, Some(2_500));
        assert_eq!(report(&[("retry-after", "0.0001")]).retry_after_ms, Some(1));
        assert_eq!(report(&[("retry-after-ms", "20.1")]).retry_after_ms, Some(21));
        assert_eq!(
            report(&[("retry-after-ms", "250"), ("retry-after", "9")]).retry_after_ms,
            Some(250)
        );
        assert_eq!(report(&[("retry-after", "0")]).retry_after_ms, None);
        // A malformed retry-after-ms falls back to retry-after and is counted.
        let r = report(&[("retry-after-ms", "soon"), ("retry-after", "3")]);
        assert_eq!((r.retry_after_ms, r.retry_errors), (Some(3_000), 1));
        for bad in ["-1", "1e3", "", " ", ".", "1.2.3", "NaN", "inf", "+5"] {
            let r = report(&[("retry-after", bad)]);
            assert_eq!((r.retry_after_ms, r.retry_errors), (None, 1), "{bad:?}");
        }
    }

    #[test]
    fn http_dates_against_the_date_header() {
        // 30 s after the response's own date, whatever the local clock says.
        let r = parse(
            &[
                ("date", "Tue, 10 Sep 2024 23:58:08 GMT"),
                ("retry-after", "Tue, 10 Sep 2024 23:58:38 GMT"),
            ],
            0,
        );
        assert_eq!(r.retry_after_ms, Some(30_000));
        // Without a date header: against the engine clock.
        let at = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(at, 784_111_777_000);
        assert_eq!(
            parse(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")], at - 1_500).retry_after_ms,
            Some(1_500)
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(at));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(at));
        // A malformed date counts only when it is needed.
        let r = parse(
            &[("date", "yesterday"), ("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")],
            at - 10,
        );
        assert_eq!((r.retry_after_ms, r.retry_errors), (Some(10), 1));
        assert_eq!(parse(&[("date", "yesterday"), ("retry-after", "5")], 0).retry_errors, 0);
        assert_eq!(parse_http_date("Sun, 31 Feb 1994 08:49:37 GMT"), None);
    }

    /// RFC 9110 §5.6.7 as the `httpdate` crate reads it: surrounding spaces are not part of the
    /// value; names are case-sensitive; the day name must be the date's; no leap second.
    #[test]
    fn http_dates_follow_rfc_9110() {
        let at = Some(784_111_777_000);
        assert_eq!(parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT "), at);
        assert_eq!(parse_http_date("Sun Nov 06 08:49:37 1994"), at);
        for bad in [
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Wed, 31 Dec 2025 23:59:60 GMT",
            "Thu, 01 Jan 1970 00:00:00",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_and_instants() {
        assert_eq!(parse_duration_ms("1s"), Some(1_000.0));
        assert_eq!(parse_duration_ms("6m0s"), Some(360_000.0));
        assert_eq!(parse_duration_ms("20ms"), Some(20.0));
        assert_eq!(parse_duration_ms("1h2m3.5s"), Some(3_723_500.0));
        assert!(parse_duration_ms("1.428s").is_some_and(|ms| (ms - 1428.0).abs() < 1e-9));
        assert_eq!(parse_duration_ms("1d2h"), Some(93_600_000.0));
        assert_eq!(parse_duration_ms("1500us"), Some(1.5));
        for bad in ["", "5", "s", "1x", "1..2s", "-1s", "1 s", "6m0", "+1s"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00.25+01:00"), Some(250));
        for bad in [
            "2025-13-01T00:00:00Z",
            "2025-01-15",
            "2025-01-15T25:00:00Z",
            "2025-01-15T14:24:00",
            "soon",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn malformed_values_are_counted_per_dimension() {
        let r = report(&[
            ("x-ratelimit-limit-tokens", "0"),
            ("x-ratelimit-remaining-tokens", "-3"),
            ("x-ratelimit-reset-tokens", "tomorrow"),
            ("anthropic-ratelimit-output-tokens-reset", "2025-01-15 14:24"),
            ("x-ratelimit-remaining-requests", "12"),
        ]);
        assert_eq!(
            r.dimensions[1],
            DimensionReport {
                limit: None,
                remaining: None,
                errors: 3
            }
        );
        assert_eq!(r.dimensions[3].errors, 1);
        assert_eq!(r.dimensions[0].remaining, Some(12));
    }
}
