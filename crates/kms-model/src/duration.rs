//! Go duration strings (`3s`, `1m30s`, `-15s`), the form of `metav1.Duration` in YAML.
//!
//! kube-apiserver reads `kms.timeout` with Go's `time.ParseDuration` and writes durations with
//! `time.Duration.String()`. Both are reproduced here exactly, so that what ucp-kms accepts and
//! writes is what kube-apiserver accepts and writes.

use std::fmt;
use std::time::Duration;

/// A signed duration with nanosecond precision and Go's range (an `int64` of nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration {
    nanos: i64,
}

impl GoDuration {
    /// The duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Self {
        Self { nanos }
    }

    /// The signed number of nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// Whether the duration is longer than zero, the condition kube-apiserver puts on timeouts.
    pub const fn is_positive(self) -> bool {
        self.nanos > 0
    }

    /// The duration as a standard one, or `None` when it is negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.nanos).ok().map(Duration::from_nanos)
    }
}

/// Go's `Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`.
impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos < 0 {
            f.write_str("-")?;
        }
        f.write_str(&format_unsigned(u128::from(self.nanos.unsigned_abs())))
    }
}

/// Why a duration string was refused, worded as Go's `time.ParseDuration` words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// Not a duration at all, or out of range.
    #[error("time: invalid duration {}", go_quote(.0))]
    Invalid(String),
    /// A number without a unit, such as `10`.
    #[error("time: missing unit in duration {}", go_quote(.0))]
    MissingUnit(String),
    /// A unit Go does not know, such as `10d`.
    #[error("time: unknown unit {} in duration {}", go_quote(.unit), go_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
}

/// Parses a duration with Go's `time.ParseDuration` grammar.
///
/// A duration is an optional sign and a sequence of decimal numbers, each with an optional
/// fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `300ms`, `-1.5h` or
/// `2h45m`; a bare `0` is allowed.
///
/// ```
/// use kms_model::duration::parse_go_duration;
///
/// assert_eq!(parse_go_duration("1m30s").unwrap().as_nanos(), 90_000_000_000);
/// assert!(parse_go_duration("10").is_err());
/// ```
///
/// # Errors
///
/// [`ParseDurationError`] when the text is not a duration or lies outside Go's range of about
/// 292 years.
pub fn parse_go_duration(input: &str) -> Result<GoDuration, ParseDurationError> {
    let invalid = || ParseDurationError::Invalid(input.to_owned());
    let mut rest = input;
    let negative = match rest.as_bytes().first() {
        Some(b'-') => true,
        Some(_) | None => false,
    };
    if let Some(stripped) = rest.strip_prefix(['-', '+']) {
        rest = stripped;
    }
    if rest == "0" {
        return Ok(GoDuration::from_nanos(0));
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    // Accumulate in u64 like Go, so the bounds are the same: 1<<63 is allowed only as a negative.
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (whole, after_whole) = leading_digits(rest).ok_or_else(invalid)?;
        let had_whole = after_whole.len() != rest.len();
        rest = after_whole;

        let mut fraction = (0u64, 1f64);
        let mut had_fraction = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (value, scale, after_fraction) = leading_fraction(after_dot);
            had_fraction = after_fraction.len() != after_dot.len();
            fraction = (value, scale);
            rest = after_fraction;
        }
        if !had_whole && !had_fraction {
            return Err(invalid());
        }

        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(ParseDurationError::MissingUnit(input.to_owned()));
        }
        let unit_nanos = unit_nanos(unit).ok_or_else(|| ParseDurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;

        if whole > (1u64 << 63) / unit_nanos {
            return Err(invalid());
        }
        let mut value = whole * unit_nanos;
        if fraction.0 > 0 {
            // The same float arithmetic as Go, so that rounding matches:
            // v += uint64(float64(f) * (float64(unit) / scale)).
            let extra = (fraction.0 as f64 * (unit_nanos as f64 / fraction.1)) as u64;
            value = value.checked_add(extra).ok_or_else(invalid)?;
            if value > 1u64 << 63 {
                return Err(invalid());
            }
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > 1u64 << 63 {
            return Err(invalid());
        }
    }

    if negative {
        // 1<<63 nanoseconds is exactly i64::MIN when negated.
        Ok(GoDuration::from_nanos((total as i64).wrapping_neg()))
    } else if total > i64::MAX as u64 {
        Err(invalid())
    } else {
        Ok(GoDuration::from_nanos(total as i64))
    }
}

/// Formats a duration as Go's `Duration.String()` does: `3s`, `1m30s`, `500ms`, `1h0m0s`.
///
/// ```
/// use std::time::Duration;
/// use kms_model::duration::format_go_duration;
///
/// assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
/// assert_eq!(format_go_duration(Duration::from_millis(500)), "500ms");
/// ```
pub fn format_go_duration(duration: Duration) -> String {
    format_unsigned(duration.as_nanos())
}

/// Go's formatting of an unsigned nanosecond count, extended to u128.
fn format_unsigned(nanos: u128) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", with_fraction(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", with_fraction(nanos, 6));
    }

    let seconds = with_fraction(nanos % 60_000_000_000, 9);
    let minutes_total = nanos / 60_000_000_000;
    if minutes_total == 0 {
        return format!("{seconds}s");
    }
    let minutes = minutes_total % 60;
    let hours = minutes_total / 60;
    if hours == 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{hours}h{minutes}m{seconds}s")
    }
}

/// `value / 10^digits` with the fraction's trailing zeros (and a lone dot) removed.
fn with_fraction(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let padded = format!("{fraction:0width$}", width = digits as usize);
    format!("{whole}.{}", padded.trim_end_matches('0'))
}

/// The leading decimal digits as a number (`None` on overflow past 1<<63) and the rest.
fn leading_digits(input: &str) -> Option<(u64, &str)> {
    let end = input.find(|c: char| !c.is_ascii_digit()).unwrap_or(input.len());
    let mut value: u64 = 0;
    for digit in input[..end].bytes() {
        if value > (1u64 << 63) / 10 {
            return None;
        }
        value = value * 10 + u64::from(digit - b'0');
        if value > 1u64 << 63 {
            return None;
        }
    }
    Some((value, &input[end..]))
}

/// The digits after a decimal point as Go keeps them: a value and its scale, digits past what
/// fits being dropped, and the rest of the input.
fn leading_fraction(input: &str) -> (u64, f64, &str) {
    let end = input.find(|c: char| !c.is_ascii_digit()).unwrap_or(input.len());
    let mut value: u64 = 0;
    let mut scale = 1f64;
    let mut overflow = false;
    for digit in input[..end].bytes() {
        if overflow || value > (1u64 << 63) / 10 {
            overflow = true;
            continue;
        }
        let next = value * 10 + u64::from(digit - b'0');
        if next > 1u64 << 63 {
            overflow = true;
            continue;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale, &input[end..])
}

/// Nanoseconds per unit, for the units Go knows.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // U+00B5 (micro sign) and U+03BC (Greek small letter mu), as Go accepts both.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Quotes as Go's `time` package does in its errors: `"` and `\\` escaped, control and
/// non-ASCII characters as `\xNN` per byte.
fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c < ' ' || !c.is_ascii() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                quoted.push_str(&format!("\\x{byte:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                quoted.push('\\');
            }
            quoted.push(c);
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(input: &str) -> i64 {
        parse_go_duration(input).unwrap_or_else(|e| panic!("{input}: {e}")).as_nanos()
    }

    #[test]
    fn parses_what_go_parses() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.00s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036.854775807s", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036.854775808s", i64::MIN),
            ("0.100000000000000000000h", 360_000_000_000),
            ("0.830103483285477580700h", 2_988_372_539_827),
        ];
        for &(input, expected) in cases {
            assert_eq!(nanos(input), expected, "{input}");
        }
    }

    #[test]
    fn refuses_what_go_refuses() {
        let cases: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("3", r#"time: missing unit in duration "3""#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            ("-.", r#"time: invalid duration "-.""#),
            (".s", r#"time: invalid duration ".s""#),
            ("+.s", r#"time: invalid duration "+.s""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            ("9223372036854775808ns", r#"time: invalid duration "9223372036854775808ns""#),
            ("9223372036854775.808us", r#"time: invalid duration "9223372036854775.808us""#),
            ("-9223372036854775809ns", r#"time: invalid duration "-9223372036854775809ns""#),
            ("3s ", r#"time: unknown unit "s " in duration "3s ""#),
            ("3\n", r#"time: unknown unit "\x0a" in duration "3\x0a""#),
            ("3é", r#"time: unknown unit "\xc3\xa9" in duration "3\xc3\xa9""#),
            (" 3s", r#"time: invalid duration " 3s""#),
        ];
        for &(input, message) in cases {
            let err = parse_go_duration(input).expect_err(input);
            assert_eq!(err.to_string(), message, "{input}");
        }
    }

    #[test]
    fn formats_as_go_does() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (500_000_000, "500ms"),
            (3_300_000_000, "3.3s"),
            (3_000_000_000, "3s"),
            (90_000_000_000, "1m30s"),
            (270_500_000_000, "4m30.5s"),
            (3_600_000_000_000, "1h0m0s"),
            (18_060_000_000_000, "5h1m0s"),
            (3_723_004_005_006, "1h2m3.004005006s"),
            (i64::MAX as u64, "2562047h47m16.854775807s"),
        ];
        for &(n, expected) in cases {
            assert_eq!(format_go_duration(Duration::from_nanos(n)), expected, "{n}");
        }
        assert_eq!(GoDuration::from_nanos(-15_000_000_000).to_string(), "-15s");
        assert_eq!(GoDuration::from_nanos(i64::MIN).to_string(), "-2562047h47m16.854775808s");
    }

    #[test]
    fn round_trips() {
        for input in ["3s", "1m30s", "500ms", "1h0m0s", "2.5s", "1.5µs", "7ns"] {
            let parsed = parse_go_duration(input).unwrap();
            assert_eq!(parsed.to_string(), input);
        }
    }
}
