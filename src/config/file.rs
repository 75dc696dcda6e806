//! Reading the TOML file into the section mirrors, with errors as data.
//!
//! Each section file (`server.rs`, `apple.rs`, …) declares a serde mirror of
//! its table (`deny_unknown_fields`, enums for choices, durations read as
//! they are written). This module runs serde over one parsed table with its
//! own deserializer, because `toml`'s error type carries the key and the
//! expected names only inside its message text. Here an error is a
//! [`ReadError`]: the key path as segments and what went wrong as an enum,
//! so [`super::validate`] builds its messages from data, never by taking a
//! message apart.

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Unexpected, Visitor};
use std::fmt;

/// Where in a section serde stopped, and why.
#[derive(Debug)]
pub struct ReadError {
    /// From the section's own key inwards, e.g. `trusted_proxies`, `[0]`.
    pub path: Vec<Segment>,
    pub kind: Kind,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// What serde found wrong.
#[derive(Debug)]
pub enum Kind {
    /// A key the section does not have; `expected` are the keys it has.
    UnknownKey { expected: &'static [&'static str] },
    /// A value outside a closed set (an enum); `expected` is the set.
    UnknownChoice {
        found: String,
        expected: &'static [&'static str],
    },
    /// Anything else: a wrong type, a bad duration; serde's own words.
    Invalid(String),
}

impl ReadError {
    /// The section-level key to set aside before reading the rest again.
    pub fn key(&self) -> Option<&str> {
        match self.path.first() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// The path below the section, as written after it: `.a[0]`.
    pub fn path_text(&self) -> String {
        self.path
            .iter()
            .map(|s| match s {
                Segment::Key(k) => format!(".{k}"),
                Segment::Index(i) => format!("[{i}]"),
            })
            .collect()
    }

    /// What to tell the operator, without the key (the caller adds it).
    pub fn message(&self) -> String {
        match &self.kind {
            Kind::UnknownKey { expected: [only] } => format!("unknown key; expected {only}"),
            Kind::UnknownKey { expected } => {
                format!("unknown key; expected one of {}", expected.join(", "))
            }
            Kind::UnknownChoice { found, expected } => {
                format!("expected {}, found {found:?}", quoted_choices(expected))
            }
            Kind::Invalid(message) => message.clone(),
        }
    }

    /// Errors are raised innermost first; each enclosing map or sequence
    /// puts its own step in front on the way out.
    fn within(mut self, segment: Segment) -> Self {
        self.path.insert(0, segment);
        self
    }
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
fn quoted_choices(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path_text();
        write!(f, "{}: {}", path.trim_start_matches('.'), self.message())
    }
}

impl std::error::Error for ReadError {}

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ReadError {
            path: Vec::new(),
            kind: Kind::Invalid(msg.to_string()),
        }
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        // The field itself becomes the path, added by the map it is in.
        ReadError {
            path: Vec::new(),
            kind: Kind::UnknownKey { expected },
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        ReadError {
            path: Vec::new(),
            kind: Kind::UnknownChoice {
                found: variant.to_string(),
                expected,
            },
        }
    }
}

/// Reads one table into `T`.
pub fn read<T: DeserializeOwned>(table: toml::Table) -> Result<T, ReadError> {
    T::deserialize(ValueReader(toml::Value::Table(table)))
}

/// A serde deserializer over a parsed TOML value, raising [`ReadError`].
struct ValueReader(toml::Value);

impl<'de> Deserializer<'de> for ValueReader {
    type Error = ReadError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.0 {
            toml::Value::String(s) => visitor.visit_string(s),
            toml::Value::Integer(i) => visitor.visit_i64(i),
            toml::Value::Float(f) => visitor.visit_f64(f),
            toml::Value::Boolean(b) => visitor.visit_bool(b),
            // No key takes a date; say so rather than read it as text.
            toml::Value::Datetime(_) => Err(de::Error::invalid_type(
                Unexpected::Other("date-time"),
                &visitor,
            )),
            toml::Value::Array(items) => visitor.visit_seq(Items(items.into_iter().enumerate())),
            toml::Value::Table(table) => visitor.visit_map(Entries {
                entries: table.into_iter(),
                pending: None,
            }),
        }
    }

    /// TOML has no null: a key that is there is `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visitor.visit_some(self)
    }

    /// Choices are written as strings: `auth = "bearer"`.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        match self.0 {
            toml::Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            other => ValueReader(other).deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct
        map struct identifier ignored_any
    }
}

/// The items of an array, each error marked with its index.
struct Items(std::iter::Enumerate<std::vec::IntoIter<toml::Value>>);

impl<'de> de::SeqAccess<'de> for Items {
    type Error = ReadError;

    fn next_element_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, ReadError> {
        let Some((i, item)) = self.0.next() else {
            return Ok(None);
        };
        seed.deserialize(ValueReader(item))
            .map(Some)
            .map_err(|e| e.within(Segment::Index(i)))
    }
}

/// The entries of a table, each error marked with its key.
struct Entries {
    entries: toml::map::IntoIter,
    /// The entry whose key was handed out and whose value is next.
    pending: Option<(String, toml::Value)>,
}

impl<'de> de::MapAccess<'de> for Entries {
    type Error = ReadError;

    fn next_key_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, ReadError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let read = seed
            .deserialize(key.as_str().into_deserializer())
            .map_err(|e: ReadError| e.within(Segment::Key(key.clone())))?;
        self.pending = Some((key, value));
        Ok(Some(read))
    }

    fn next_value_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, ReadError> {
        let (key, value) = self
            .pending
            .take()
            .expect("serde asks for a value only after its key");
        seed.deserialize(ValueReader(value))
            .map_err(|e| e.within(Segment::Key(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::duration::DurationText;
    use serde::Deserialize;
    use std::time::Duration;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        threads: Option<i64>,
        proxies: Option<Vec<String>>,
        mode: Option<Mode>,
        wait: Option<DurationText>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Reject,
        Keep,
    }

    fn error(text: &str) -> (String, String) {
        let e = read::<Sample>(text.parse().unwrap()).unwrap_err();
        (e.path_text(), e.message())
    }

    #[test]
    fn errors_carry_their_key_path_and_expected_names() {
        assert_eq!(
            error("listn = 1"),
            (
                ".listn".into(),
                "unknown key; expected one of threads, proxies, mode, wait".into()
            )
        );
        assert_eq!(
            error("threads = \"two\""),
            (
                ".threads".into(),
                "invalid type: string \"two\", expected i64".into()
            )
        );
        assert_eq!(
            error("proxies = [\"a\", 2]"),
            (
                ".proxies[1]".into(),
                "invalid type: integer `2`, expected a string".into()
            )
        );
        assert_eq!(
            error("mode = \"sometimes\""),
            (
                ".mode".into(),
                "expected \"reject\" or \"keep\", found \"sometimes\"".into()
            )
        );
        assert!(error("wait = \"soon\"")
            .1
            .starts_with("expected a duration such as"));
        assert_eq!(
            error("wait = 5").1,
            "invalid type: integer `5`, expected a duration such as \"30s\", \"10m\", \"12h\" or \"7d\""
        );
        assert!(error("wait = 1979-05-27").1.contains("date-time"));
    }

    #[test]
    fn good_values_read() {
        let s: Sample = read(
            "threads = 2\nproxies = [\"a\"]\nmode = \"keep\"\nwait = \"1m\""
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(s.threads, Some(2));
        assert_eq!(s.proxies, Some(vec!["a".to_string()]));
        assert_eq!(s.mode, Some(Mode::Keep));
        assert_eq!(s.wait.map(|d| d.0), Some(Duration::from_secs(60)));
    }

    #[test]
    fn choices_are_listed_as_written() {
        assert_eq!(quoted_choices(&["a"]), "\"a\"");
        assert_eq!(
            quoted_choices(&["required", "public", "bearer"]),
            "\"required\", \"public\" or \"bearer\""
        );
    }
}
