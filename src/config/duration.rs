//! Durations as the config writes them: `"30s"`, `"10m"`, `"12h"`, `"7d"`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// What a duration looks like, for every message about one.
const EXAMPLES: &str = "a duration such as \"30s\", \"10m\", \"12h\" or \"7d\"";

/// Parses `30s`, `10m`, `12h`, `7d` (a whole number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: Option<u64> = digits.parse().ok();
    let secs = n.and_then(|n| match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    });
    secs.map(Duration::from_secs)
        .ok_or_else(|| format!("expected {EXAMPLES}, found {text:?}"))
}

/// A duration as the config writes it (`"30s"`, `"10m"`, `"12h"`, `"7d"`),
/// parsed while the section is read so a bad one is reported with its key.
#[derive(Debug, Clone, Copy)]
pub struct DurationText(pub Duration);

impl DurationText {
    /// The duration a key gives, or `default` when it is unset.
    pub fn or(value: Option<DurationText>, default: Duration) -> Duration {
        value.map_or(default, |d| d.0)
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(DurationVisitor)
    }
}

/// Says "expected a duration" rather than "expected a string" when a
/// duration is written as a bare number (`grace_period = 5`).
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = DurationText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXAMPLES)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DurationText, E> {
        parse_duration(text).map(DurationText).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
