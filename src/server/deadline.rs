//! Request deadlines, as k8s.io/apiserver sets them (`WithRequestDeadline`,
//! `WithTimeoutForNonLongRunningRequests`): a non-long-running request has `--request-timeout`
//! (default 60 s) from its receipt, shortened by a valid `timeout` query parameter (a Go
//! duration); a malformed one is a 400. Past the deadline the client gets kube's 504 `Timeout`
//! Status; a write that was already under way is not undone (it may still complete, as in kube,
//! where the storage call outlives the timed-out handler).

use crate::api::error::ApiError;
use crate::api::query::Query;
use std::time::Duration;

/// kube's message when the `timeout` parameter is malformed.
const INVALID_TIMEOUT: &str = "invalid timeout specified in the request URL";

/// Why a Go duration did not parse, worded as Go's `time.ParseDuration` words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// A signed duration parsed like Go's `time.ParseDuration`: `300ms`, `-1.5h`, `2h45m`, `0`;
/// units `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`. Returns nanoseconds.
pub fn parse_go_duration(text: &str) -> Result<i128, DurationError> {
    let quoted = crate::field_error::go_quote(text);
    let invalid = || DurationError(format!("time: invalid duration {quoted}"));
    let mut s = text;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    // Go rejects anything over 1<<63 - 1 ns.
    const MAX: i128 = i64::MAX as i128;
    let mut total: i128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
        } else if int_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        if unit.is_empty() {
            return Err(DurationError(format!(
                "time: missing unit in duration {quoted}"
            )));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError(format!(
                    "time: unknown unit {} in duration {quoted}",
                    crate::field_error::go_quote(unit)
                )));
            }
        };
        let mut value: i128 = 0;
        for b in int_part.bytes() {
            value = value * 10 + i128::from(b - b'0');
            if value > MAX + 1 {
                return Err(invalid());
            }
        }
        value *= scale;
        let mut frac_scale = scale;
        for b in frac_part.bytes() {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            value += i128::from(b - b'0') * frac_scale;
        }
        total += value;
        if total > MAX + i128::from(negative) {
            return Err(invalid());
        }
    }
    Ok(if negative { -total } else { total })
}

/// A non-negative Go duration flag value (`60s`, `1m0s`), for clap.
pub fn duration_flag(text: &str) -> Result<Duration, String> {
    let nanos = parse_go_duration(text).map_err(|e| e.to_string())?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("{text:?} must not be negative"))
}

/// The time a non-long-running request may take: `maximum`, or the `timeout` parameter when it
/// is positive and shorter (`0` or a longer value means the maximum, as in kube).
pub fn request_timeout(query: &Query, maximum: Duration) -> Result<Duration, ApiError> {
    let Some(value) = query.first("timeout").filter(|v| !v.is_empty()) else {
        return Ok(maximum);
    };
    let nanos = parse_go_duration(value)
        .map_err(|e| ApiError::bad_request(format!("{INVALID_TIMEOUT} - {e}")))?;
    let asked = u64::try_from(nanos).ok().map(Duration::from_nanos);
    Ok(match asked {
        Some(d) if !d.is_zero() && d < maximum => d,
        _ => maximum,
    })
}

/// The 504 of a request that ran out of time (`errors.NewTimeoutError`, as the finisher of
/// kube's REST handlers words it).
pub fn timed_out() -> ApiError {
    ApiError::timeout(
        "request did not complete within requested timeout - context deadline exceeded",
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_go_parses_them() {
        let ok: &[(&str, i128)] = &[
            ("0", 0),
            ("-0", 0),
            ("5s", 5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-5s", -5_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("2h45m", 9_900_000_000_000),
            ("300ms", 300_000_000),
            ("1us", 1_000),
            ("1\u{b5}s", 1_000),
            ("1\u{3bc}s", 1_000),
            ("10ns", 10),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("1m0s", 60_000_000_000),
            ("0.000000001s", 1),
            ("9223372036854775807ns", 9_223_372_036_854_775_807),
        ];
        for (text, nanos) in ok {
            assert_eq!(parse_go_duration(text), Ok(*nanos), "{text}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "time: invalid duration \"\""),
            ("abc", "time: invalid duration \"abc\""),
            ("5", "time: missing unit in duration \"5\""),
            ("5x", "time: unknown unit \"x\" in duration \"5x\""),
            ("1s5", "time: missing unit in duration \"1s5\""),
            (".s", "time: invalid duration \".s\""),
            ("-", "time: invalid duration \"-\""),
            (
                "9223372036854775808ns",
                "time: invalid duration \"9223372036854775808ns\"",
            ),
            ("3000000h", "time: invalid duration \"3000000h\""),
        ];
        for (text, message) in bad {
            assert_eq!(
                parse_go_duration(text).unwrap_err().to_string(),
                *message,
                "{text}"
            );
        }
    }

    #[test]
    fn the_timeout_parameter_only_shortens() {
        let max = Duration::from_secs(60);
        let t = |q: &str| request_timeout(&Query::parse(q), max);
        assert_eq!(t("").unwrap(), max);
        assert_eq!(t("timeout=10s").unwrap(), Duration::from_secs(10));
        assert_eq!(t("timeout=0s").unwrap(), max);
        assert_eq!(t("timeout=-1s").unwrap(), max);
        assert_eq!(t("timeout=2m").unwrap(), max);
        let e = t("timeout=10").unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message(),
            "invalid timeout specified in the request URL - time: missing unit in duration \"10\""
        );
        assert_eq!(timed_out().code(), 504);
        assert_eq!(timed_out().reason(), "Timeout");
    }
}
