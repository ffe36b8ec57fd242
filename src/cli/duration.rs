//! The one value parser for every duration flag of every command.
//!
//! Accepts a number of seconds (`10`, `0.5`, `1e3`) or a number with a unit
//! (`500ms`, `2.5s`, `2m`, `1h`) and returns a [`Duration`]. Negative numbers,
//! NaN and infinities are refused with a message naming the value; a value above
//! [`MAX`] (about a century) is capped to it, so `Instant::now() + d` and every
//! deadline computed from a flag can never overflow the clock.
//!
//! Not for: deciding what 0 means. Each flag documents that itself ("never",
//! "no limit", "none"); the parser returns [`Duration::ZERO`] for it.

use std::time::Duration;

/// The largest duration a flag can hold: 100 years of 365 days. Larger values
/// are capped to it (they mean "practically forever" and are kept working), not
/// refused: a deadline this far ahead still fits every clock we add it to.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parse one duration flag value; see the module documentation for the syntax.
///
/// A positive value too small for a nanosecond is rounded up to one, so a tiny
/// timeout never turns into 0 (which often means "never").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 10, 0.5, 2.5s, 500ms, 2m or 1h)"))?;
    if value.is_nan() || value.is_infinite() {
        return Err(format!("not a finite duration: {s:?}"));
    }
    if value < 0.0 {
        return Err(format!("a duration cannot be negative: {s:?}"));
    }
    let secs = value * scale;
    // `1e300h` overflows to infinity only after scaling: also "huge", so capped.
    if !secs.is_finite() || secs >= MAX.as_secs_f64() {
        return Ok(MAX);
    }
    let d = Duration::from_secs_f64(secs);
    if d.is_zero() && secs > 0.0 {
        return Ok(Duration::from_nanos(1));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_seconds_and_fractions_are_kept() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1e3"), Ok(Duration::from_secs(1000)));
        assert_eq!(parse_duration(" 2 "), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn units_scale_the_number() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn zero_is_zero_so_each_flag_can_give_it_its_meaning() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("-0"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_tiny_positive_value_is_not_rounded_down_to_zero() {
        assert_eq!(parse_duration("1e-300"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn negatives_nan_and_infinities_are_refused_with_a_message() {
        for bad in ["-1", "-0.5s", "-1e300"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("negative") && e.contains(bad), "{bad}: {e}");
        }
        for bad in ["nan", "NaN", "inf", "-inf", "infinity", "1e999"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("finite") && e.contains(bad), "{bad}: {e}");
        }
        for bad in ["", "ten", "1x", "ms", "1 2", "0x10"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn huge_values_are_capped_at_the_documented_maximum() {
        for huge in ["1.8e19", "1e300", "1e300h", "18446744073709551616", "3153600000", "52560000m"] {
            assert_eq!(parse_duration(huge), Ok(MAX), "{huge}");
        }
        assert_eq!(parse_duration("3153599999"), Ok(Duration::from_secs(3_153_599_999)));
        // The cap fits every clock a deadline is computed on.
        assert!(std::time::Instant::now().checked_add(MAX).is_some());
        assert!(tokio::time::Instant::now().checked_add(MAX).is_some());
    }
}
