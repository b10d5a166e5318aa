//! JSON helpers that reproduce how DCS (Python + pydantic + PostgreSQL) lays out JSON.
//!
//! `serde_json::Value` sorts object keys, but DCS answers with keys in source order
//! (`json.loads` keeps it) or in PostgreSQL JSONB order. [`JsonValue`] keeps the order
//! it was parsed in, and [`JsonbOrdered`] writes a `serde_json::Value` in JSONB order.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value whose objects keep their keys in document order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum JsonValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<JsonValue>),
    Object(Vec<(String, JsonValue)>),
}

impl JsonValue {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub(crate) fn object(pairs: Vec<(String, JsonValue)>) -> Self {
        JsonValue::Object(pairs)
    }

    pub(crate) fn string(value: impl Into<String>) -> Self {
        JsonValue::String(value.into())
    }

    pub(crate) fn int(value: i64) -> Self {
        JsonValue::Number(value.into())
    }

    /// Looks a key up in an object (the last occurrence wins, as in Python).
    pub(crate) fn get(&self, key: &str) -> Option<&JsonValue> {
        match self {
            JsonValue::Object(pairs) => pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            JsonValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn is_object(&self) -> bool {
        matches!(self, JsonValue::Object(_))
    }

    pub(crate) fn to_serde(&self) -> serde_json::Value {
        match self {
            JsonValue::Null => serde_json::Value::Null,
            JsonValue::Bool(b) => serde_json::Value::Bool(*b),
            JsonValue::Number(n) => serde_json::Value::Number(n.clone()),
            JsonValue::String(s) => serde_json::Value::String(s.clone()),
            JsonValue::Array(items) => {
                serde_json::Value::Array(items.iter().map(Self::to_serde).collect())
            }
            JsonValue::Object(pairs) => serde_json::Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_serde()))
                    .collect(),
            ),
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // Serializing this type cannot fail: keys are strings and numbers are finite.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Serialize for JsonValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonValue::Null => serializer.serialize_unit(),
            JsonValue::Bool(b) => serializer.serialize_bool(*b),
            JsonValue::Number(n) => n.serialize(serializer),
            JsonValue::String(s) => serializer.serialize_str(s),
            JsonValue::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            JsonValue::Object(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (key, value) in pairs {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonValueVisitor)
    }
}

struct JsonValueVisitor;

impl<'de> Visitor<'de> for JsonValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonValue, E> {
        serde_json::Number::from_f64(v)
            .map(JsonValue::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<JsonValue, E> {
        Ok(JsonValue::String(v))
    }

    fn visit_unit<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_none<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonValue, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        let mut pairs: Vec<(String, JsonValue)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, JsonValue>()? {
            // Python dicts keep the first position of a repeated key and its last value.
            match pairs.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => pairs.push((key, value)),
            }
        }
        Ok(JsonValue::Object(pairs))
    }
}

/// Writes a `serde_json::Value` with object keys in PostgreSQL JSONB order (shorter keys
/// first, then bytewise), which is how DCS returns JSON columns such as `activity_details`.
pub(crate) struct JsonbOrdered<'a>(pub(crate) &'a serde_json::Value);

impl Serialize for JsonbOrdered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            serde_json::Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&JsonbOrdered(item))?;
                }
                seq.end()
            }
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by(|a, b| {
                    a.len()
                        .cmp(&b.len())
                        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
                });
                let mut out = serializer.serialize_map(Some(keys.len()))?;
                for key in keys {
                    out.serialize_entry(key, &JsonbOrdered(&map[key.as_str()]))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// The current time at the microsecond precision DCS stores.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Formats a timestamp the way pydantic writes an aware UTC datetime:
/// `2026-11-22T09:32:53.445746Z`, without a fraction when it is zero.
pub(crate) fn format_timestamp(at: &DateTime<Utc>) -> String {
    if at.timestamp_subsec_micros() == 0 {
        at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

/// `#[serde(serialize_with)]` helpers for timestamps.
pub(crate) mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(
        at: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_timestamp(at))
    }

    pub(crate) fn option<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parse_keeps_key_order_and_reserializes_compactly() {
        let raw = br#"{ "zeta": 1, "alpha": [true, null, 1.5], "mid": {"b": "x", "a": "y"} }"#;
        let value = JsonValue::parse(raw).unwrap();
        assert_eq!(
            String::from_utf8(value.to_bytes()).unwrap(),
            r#"{"zeta":1,"alpha":[true,null,1.5],"mid":{"b":"x","a":"y"}}"#
        );
    }

    #[test]
    fn repeated_keys_keep_first_position_and_last_value() {
        let value = JsonValue::parse(br#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(
            String::from_utf8(value.to_bytes()).unwrap(),
            r#"{"a":3,"b":2}"#
        );
        assert_eq!(value.get("a"), Some(&JsonValue::int(3)));
    }

    #[test]
    fn jsonb_order_puts_shorter_keys_first() {
        let value =
            serde_json::json!({"dragdroppicture": 1, "matchTheWords": 1, "b": {"cc": 1, "a": 2}});
        assert_eq!(
            serde_json::to_string(&JsonbOrdered(&value)).unwrap(),
            r#"{"b":{"a":2,"cc":1},"matchTheWords":1,"dragdroppicture":1}"#
        );
    }

    #[test]
    fn timestamps_use_microseconds_and_z() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 32, 53).unwrap()
            + chrono::Duration::microseconds(445_746);
        assert_eq!(format_timestamp(&at), "2026-11-22T09:32:53.445746Z");
        let whole = Utc.with_ymd_and_hms(2026, 11, 22, 9, 32, 53).unwrap();
        assert_eq!(format_timestamp(&whole), "2026-11-22T09:32:53Z");
        let small = whole + chrono::Duration::microseconds(5);
        assert_eq!(format_timestamp(&small), "2026-11-22T09:32:53.000005Z");
    }
}
