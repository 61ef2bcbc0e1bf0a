//! Lenient serde helpers for Proxmox's loosely typed JSON.
//!
//! Perl's typing leaks into the API (REFERENCE.md §1.11): booleans arrive as
//! `0`/`1`, `"1"` or `true`; integers as numbers, numeric strings or floats
//! (`/cluster/nextid` answers `"100"`). These functions accept all of them and
//! are used with `#[serde(deserialize_with = ...)]`.

use serde::Deserializer;
use serde::de::{self, Visitor};
use std::fmt;

struct BoolV;
impl Visitor<'_> for BoolV {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean, 0/1 or \"0\"/\"1\"")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        Ok(v != 0)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        Ok(v != 0)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        Ok(v != 0.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        parse_bool(v).ok_or_else(|| E::custom(format!("invalid boolean '{v}'")))
    }
}

/// Parse a Proxmox boolean text (`1|0|true|false|yes|no|on|off`).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

struct U64V;
impl Visitor<'_> for U64V {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer, float or numeric string")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<u64, E> {
        Ok(u64::from(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        Ok(v.max(0) as u64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.is_finite() {
            Ok(v.max(0.0) as u64)
        } else {
            Err(E::custom("non-finite number"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        let t = v.trim();
        if let Ok(n) = t.parse::<u64>() {
            return Ok(n);
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(f.max(0.0) as u64),
            _ => Err(E::custom(format!("invalid integer '{v}'"))),
        }
    }
}

struct I64V;
impl Visitor<'_> for I64V {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer, float or numeric string")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<i64, E> {
        Ok(i64::from(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.is_finite() {
            Ok(v as i64)
        } else {
            Err(E::custom("non-finite number"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        let t = v.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Ok(n);
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(f as i64),
            _ => Err(E::custom(format!("invalid integer '{v}'"))),
        }
    }
}

struct F64V;
impl Visitor<'_> for F64V {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or numeric string")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<f64, E> {
        Ok(if v { 1.0 } else { 0.0 })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        v.trim()
            .parse::<f64>()
            .map_err(|_| E::custom(format!("invalid number '{v}'")))
    }
}

/// Wraps a visitor so `null` becomes `None`.
struct OptV<V>(V);
impl<'de, V: Visitor<'de>> Visitor<'de> for OptV<V> {
    type Value = Option<V::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self.0).map(Some)
    }
}

/// Lenient `bool`.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(BoolV)
}
/// Lenient `Option<bool>` (use with `#[serde(default)]`).
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_option(OptV(BoolV))
}
/// Lenient `u64`.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(U64V)
}
/// Lenient `Option<u64>` (use with `#[serde(default)]`).
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_option(OptV(U64V))
}
/// Lenient `i64`.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(I64V)
}
/// Lenient `Option<i64>` (use with `#[serde(default)]`).
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_option(OptV(I64V))
}
/// Lenient `u32` (e.g. a VMID sent as `"100"` by old versions).
pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = d.deserialize_any(U64V)?;
    u32::try_from(v).map_err(|_| de::Error::custom("integer out of range for u32"))
}
/// Lenient `Option<u32>` (use with `#[serde(default)]`).
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match d.deserialize_option(OptV(U64V))? {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| de::Error::custom("integer out of range for u32")),
    }
}
/// Lenient `f64`.
pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(F64V)
}
/// Lenient `Option<f64>` (use with `#[serde(default)]`).
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_option(OptV(F64V))
}

struct StrV;
impl Visitor<'_> for StrV {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(if v { "1" } else { "0" }.to_string())
    }
}

/// Lenient `Option<String>`: numbers become their decimal text.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(OptV(StrV))
}
/// Lenient `String`: numbers become their decimal text.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(StrV)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::opt_bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "super::opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "super::opt_f64")]
        f: Option<f64>,
    }

    #[test]
    fn accepts_quirky_values() {
        for (json, b, n) in [
            (r#"{"b":1,"n":"100"}"#, Some(true), Some(100)),
            (r#"{"b":"0","n":1e3}"#, Some(false), Some(1000)),
            (r#"{"b":true,"n":7}"#, Some(true), Some(7)),
            (r#"{"b":null}"#, None, None),
            (r#"{}"#, None, None),
        ] {
            let t: T = serde_json::from_str(json).unwrap();
            assert_eq!(t.b, b, "{json}");
            assert_eq!(t.n, n, "{json}");
        }
        let t: T = serde_json::from_str(r#"{"f":"0.5"}"#).unwrap();
        assert_eq!(t.f, Some(0.5));
    }
}
