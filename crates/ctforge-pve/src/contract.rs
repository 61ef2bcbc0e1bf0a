//! Schema contract checker (cargo feature `contract`; not in the default
//! runtime path).
//!
//! Loads the official Proxmox VE API schema (`pve-api-schema.json`, the
//! api-viewer's `apidata.js` as JSON; see `shared/pve-api/SOURCE.md`) and
//! checks a [`RequestSpec`] against it:
//!
//! * the path exists (templated segments like `{node}` match any value) and
//!   the method is defined on it;
//! * every parameter is documented (`net0` matches `net[n]`, with PVE's index
//!   limits), required ones are present, `requires` pairs hold;
//! * every value satisfies its `type` (booleans must be `0`/`1`, integers
//!   `^[+-]?\d+$`), `enum`, `pattern`, `minimum`/`maximum`,
//!   `minLength`/`maxLength`, and the named `format`s PVE uses here
//!   (`pve-vmid`, `pve-node`, `pve-storage-id`, `dns-name`, `pve-tag-list`,
//!   `ipv4`, `mac-addr`, `pve-ipv4-config`, `disk-size`, …);
//! * property strings (inline `format` objects) contain only documented
//!   sub-keys, honour `default_key` (a value without `key=`), contain the
//!   required sub-keys and have valid sub-values.
//!
//! Path parameters are validated like the other parameters, so a VMID of
//! `abc` in the URL is rejected too.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::request::RequestSpec;

/// One contract violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The parameter concerned (None for path/method problems).
    pub param: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Var(String),
}

struct Entry {
    template: String,
    segs: Vec<Seg>,
    methods: BTreeMap<String, Value>,
}

/// The loaded schema and a regex cache.
pub struct Contract {
    entries: Vec<Entry>,
    regex_cache: Mutex<HashMap<String, Option<Regex>>>,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("paths", &self.entries.len())
            .finish()
    }
}

/// Highest index of `name[n]` parameters (pve-container `LXC/Config.pm`).
fn index_limit(base: &str) -> u32 {
    match base {
        "net" => 31,
        "mp" | "unused" | "dev" => 255,
        _ => 255,
    }
}

fn is_optional(schema: &Value) -> bool {
    match schema.get("optional") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => s == "1",
        _ => false,
    }
}

fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => s == "1",
        _ => false,
    }
}

fn unescape_segment(s: &str) -> String {
    s.replace("%2F", "/").replace("%25", "%")
}

impl Contract {
    /// Parse the schema JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("invalid schema json: {e}"))?;
        let mut entries = Vec::new();
        fn walk(nodes: &Value, out: &mut Vec<Entry>) {
            let Some(arr) = nodes.as_array() else {
                return;
            };
            for n in arr {
                if let Some(path) = n.get("path").and_then(Value::as_str) {
                    let segs = path
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            if s.starts_with('{') && s.ends_with('}') {
                                Seg::Var(s[1..s.len() - 1].to_string())
                            } else {
                                Seg::Lit(s.to_string())
                            }
                        })
                        .collect();
                    let methods = n
                        .get("info")
                        .and_then(Value::as_object)
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    out.push(Entry {
                        template: path.to_string(),
                        segs,
                        methods,
                    });
                }
                if let Some(children) = n.get("children") {
                    walk(children, out);
                }
            }
        }
        walk(&root, &mut entries);
        if entries.is_empty() {
            return Err("schema has no paths".into());
        }
        Ok(Contract {
            entries,
            regex_cache: Mutex::new(HashMap::new()),
        })
    }

    /// Load the schema from a file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, String> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read schema {}: {e}", p.display()))?;
        Self::from_json_str(&text)
    }

    /// Number of path nodes in the schema.
    pub fn path_count(&self) -> usize {
        self.entries.len()
    }

    /// Find the schema path matching concrete `segments`; prefers the match
    /// with the most literal segments. Returns the entry and path variables.
    fn find(&self, segments: &[&str]) -> Option<(&Entry, Vec<(String, String)>)> {
        type Candidate<'a> = (&'a Entry, Vec<(String, String)>, usize);
        let mut best: Option<Candidate<'_>> = None;
        for e in &self.entries {
            if e.segs.len() != segments.len() {
                continue;
            }
            let mut vars = Vec::new();
            let mut lits = 0;
            let ok = e.segs.iter().zip(segments).all(|(s, v)| match s {
                Seg::Lit(l) => {
                    lits += 1;
                    l == v
                }
                Seg::Var(name) => {
                    vars.push((name.clone(), unescape_segment(v)));
                    !v.is_empty()
                }
            });
            if ok && best.as_ref().is_none_or(|b| lits > b.2) {
                best = Some((e, vars, lits));
            }
        }
        best.map(|(e, v, _)| (e, v))
    }

    /// The schema template path (e.g. `/nodes/{node}/lxc/{vmid}`) a request maps to.
    pub fn template_for(&self, spec: &RequestSpec) -> Option<String> {
        let segs: Vec<&str> = spec.segments().collect();
        self.find(&segs).map(|(e, _)| e.template.clone())
    }

    /// Check one request. `Ok(())` when it conforms, else every violation.
    pub fn check(&self, spec: &RequestSpec) -> Result<(), Vec<Violation>> {
        let mut v = Vec::new();
        let segs: Vec<&str> = spec.segments().collect();
        let Some((entry, path_vars)) = self.find(&segs) else {
            return Err(vec![Violation {
                param: None,
                message: format!("path '{}' does not exist in the schema", spec.path),
            }]);
        };
        let Some(info) = entry.methods.get(spec.method.as_str()) else {
            return Err(vec![Violation {
                param: None,
                message: format!(
                    "method {} is not defined for {} (defined: {})",
                    spec.method,
                    entry.template,
                    entry.methods.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            }]);
        };
        let empty = serde_json::Map::new();
        let props = info
            .get("parameters")
            .and_then(|p| p.get("properties"))
            .and_then(Value::as_object)
            .unwrap_or(&empty);

        let mut all: Vec<(String, String)> = path_vars.clone();
        for (k, val) in &spec.params {
            if let Some((_, pv)) = path_vars.iter().find(|(pk, _)| pk == k) {
                if pv != val {
                    v.push(Violation {
                        param: Some(k.clone()),
                        message:
                            "duplicate parameter (already defined in URI) with conflicting values"
                                .into(),
                    });
                }
                continue;
            }
            // An `array` parameter travels as one form value per element (pve-common's
            // RESTHandler splits the repeated values back into the array).
            let array = self.lookup_param(props, k).is_some_and(|(_, schema)| {
                schema.get("type").and_then(Value::as_str) == Some("array")
            });
            if !array && spec.params.iter().filter(|(a, _)| a == k).count() > 1 {
                v.push(Violation {
                    param: Some(k.clone()),
                    message: "parameter given more than once".into(),
                });
            }
            all.push((k.clone(), val.clone()));
        }
        all.dedup();

        let mut present: Vec<String> = Vec::new();
        for (k, val) in &all {
            let Some((schema_name, schema)) = self.lookup_param(props, k) else {
                v.push(Violation {
                    param: Some(k.clone()),
                    message: "property is not defined in schema and the schema does not allow additional properties".into(),
                });
                continue;
            };
            present.push(schema_name.clone());
            self.check_value(k, val, schema, &mut v);
        }
        for (name, schema) in props {
            if !is_optional(schema) && !name.contains("[n]") && !present.contains(name) {
                v.push(Violation {
                    param: Some(name.clone()),
                    message: "property is missing and it is not optional".into(),
                });
            }
            if present.contains(name)
                && let Some(req) = schema.get("requires").and_then(Value::as_str)
                && !present.iter().any(|p| p == req)
            {
                v.push(Violation {
                    param: Some(name.clone()),
                    message: format!("requires parameter '{req}'"),
                });
            }
        }
        if v.is_empty() { Ok(()) } else { Err(v) }
    }

    fn lookup_param<'a>(
        &self,
        props: &'a serde_json::Map<String, Value>,
        name: &str,
    ) -> Option<(String, &'a Value)> {
        if let Some(s) = props.get(name) {
            return Some((name.to_string(), s));
        }
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || digits == name.len() {
            return None;
        }
        let (base, idx) = name.split_at(name.len() - digits);
        let idx: u32 = idx.parse().ok()?;
        if idx.to_string().len() != digits || idx > index_limit(base) {
            return None;
        }
        let key = format!("{base}[n]");
        props.get(&key).map(|s| (key, s))
    }

    fn regex(&self, pattern: &str) -> Option<Regex> {
        let mut cache = self.regex_cache.lock().ok()?;
        cache
            .entry(pattern.to_string())
            .or_insert_with(|| {
                let p = pattern.replace("(?^i:", "(?i:").replace("(?^:", "(?:");
                RegexBuilder::new(&format!("^(?:{p})$"))
                    .octal(true)
                    .build()
                    .ok()
            })
            .clone()
    }

    fn check_value(&self, name: &str, value: &str, schema: &Value, v: &mut Vec<Violation>) {
        let mut err = |m: String| {
            v.push(Violation {
                param: Some(name.to_string()),
                message: m,
            })
        };
        let ty = schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string");
        let num = |k: &str| schema.get(k).and_then(Value::as_f64);
        match ty {
            "boolean" => {
                if value != "0" && value != "1" {
                    err(format!("type check ('boolean') failed - got '{value}'"));
                }
                return;
            }
            "integer" | "number" => {
                let parsed = if ty == "integer" {
                    let ok = {
                        let t = value.strip_prefix(['+', '-']).unwrap_or(value);
                        !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
                    };
                    if ok { value.parse::<f64>().ok() } else { None }
                } else {
                    value.parse::<f64>().ok().filter(|f| f.is_finite())
                };
                let Some(n) = parsed else {
                    err(format!("type check ('{ty}') failed - got '{value}'"));
                    return;
                };
                if let Some(min) = num("minimum")
                    && n < min
                {
                    err(format!("value must have a minimum value of {min}"));
                }
                if let Some(max) = num("maximum")
                    && n > max
                {
                    err(format!("value must have a maximum value of {max}"));
                }
            }
            "string" => {
                let len = value.chars().count() as f64;
                if let Some(min) = num("minLength")
                    && len < min
                {
                    err(format!("value must be at least {min} characters long"));
                }
                if let Some(max) = num("maxLength")
                    && len > max
                {
                    err(format!("value may only be {max} characters long"));
                }
            }
            "array" => {
                // One element of a repeated form value: checked against `items`.
                if let Some(items) = schema.get("items") {
                    self.check_value(name, value, items, v);
                }
                return;
            }
            other => {
                err(format!(
                    "parameters of type '{other}' cannot be sent as form values"
                ));
                return;
            }
        }
        if let Some(Value::Array(options)) = schema.get("enum")
            && !options.iter().any(|o| o.as_str() == Some(value))
        {
            let list: Vec<&str> = options.iter().filter_map(Value::as_str).collect();
            err(format!(
                "value '{value}' does not have a value in the enumeration '{}'",
                list.join(", ")
            ));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
            match self.regex(p) {
                Some(re) if re.is_match(value) => {}
                Some(_) => err(format!("value does not match the regex pattern {p}")),
                None => err(format!("schema pattern {p} cannot be compiled")),
            }
        }
        match schema.get("format") {
            Some(Value::String(fmt)) => {
                if let Err(m) = check_format(fmt, value) {
                    err(format!("invalid format - {m}"));
                }
            }
            Some(Value::Object(sub)) => {
                let mut inner = Vec::new();
                self.check_property_string(name, value, sub, &mut inner);
                v.extend(inner);
            }
            _ => {}
        }
    }

    fn check_property_string(
        &self,
        name: &str,
        value: &str,
        sub: &serde_json::Map<String, Value>,
        v: &mut Vec<Violation>,
    ) {
        let default_key = sub
            .iter()
            .find(|(_, s)| is_true(s.get("default_key")))
            .map(|(k, _)| k.clone());
        let mut seen: Vec<String> = Vec::new();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, val) = match part.split_once('=') {
                Some((k, val)) => (k.trim().to_string(), val.trim()),
                None => match &default_key {
                    Some(d) => (d.clone(), part),
                    None => {
                        v.push(Violation {
                            param: Some(name.to_string()),
                            message: format!(
                                "invalid format - value without key, but schema does not define a default key ('{part}')"
                            ),
                        });
                        continue;
                    }
                },
            };
            // `alias`: the key stands for another (`volume` → `file`); with `keyAlias` the key's
            // name is itself a value (`virtio=<mac>` → `model=virtio`, `macaddr=<mac>`).
            let key = match sub
                .get(&key)
                .and_then(|s| s.get("alias"))
                .and_then(Value::as_str)
            {
                Some(alias) => {
                    if let Some(key_alias) = sub
                        .get(&key)
                        .and_then(|s| s.get("keyAlias"))
                        .and_then(Value::as_str)
                    {
                        seen.push(key_alias.to_string());
                    }
                    alias.to_string()
                }
                None => key,
            };
            let Some(sub_schema) = sub.get(&key) else {
                v.push(Violation {
                    param: Some(name.to_string()),
                    message: format!(
                        "invalid format - invalid key in comma-separated list property: {key}"
                    ),
                });
                continue;
            };
            if seen.contains(&key) {
                v.push(Violation {
                    param: Some(name.to_string()),
                    message: format!(
                        "invalid format - duplicate key in comma-separated list property: {key}"
                    ),
                });
            }
            seen.push(key.clone());
            self.check_value(&format!("{name}.{key}"), val, sub_schema, v);
        }
        for (k, s) in sub {
            if !is_optional(s) && s.get("alias").is_none() && !seen.contains(k) {
                v.push(Violation {
                    param: Some(name.to_string()),
                    message: format!(
                        "invalid format - property {k} is missing and it is not optional"
                    ),
                });
            }
        }
    }
}

fn re_match(pattern: &str, value: &str) -> bool {
    // Small fixed set of format regexes: compiled per call is fine for tests.
    Regex::new(pattern).is_ok_and(|r| r.is_match(value))
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

const STORAGE_CONTENT: &[&str] = &[
    "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
];

/// Validate a named PVE format. Unknown format names are accepted.
pub fn check_format(format: &str, value: &str) -> Result<(), String> {
    let ok = match format {
        "pve-vmid" => re_match(r"^[1-9][0-9]{2,8}$", value),
        "pve-node" => re_match(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$", value),
        "pve-storage-id" => re_match(r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$", value),
        "pve-configid" => re_match(r"(?i)^[a-z][a-z0-9_-]+$", value),
        "pve-configid-list" => split_list(value).all(|i| re_match(r"(?i)^[a-z][a-z0-9_-]+$", i)),
        "pve-poolid" => re_match(r"^[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}$", value),
        "pve-realm" => re_match(r"^[A-Za-z][A-Za-z.\-_0-9]*[A-Za-z0-9]$", value),
        "dns-name" => re_match(
            r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)$",
            value,
        ),
        "dns-name-list" => split_list(value).all(|d| check_format("dns-name", d).is_ok()),
        "pve-tag-list" => split_list(value).all(|t| re_match(r"(?i)^[a-z0-9_][a-z0-9_\-+.]*$", t)),
        "ipv4" => value.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<std::net::Ipv6Addr>().is_ok(),
        "mac-addr" => re_match(r"(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$", value),
        "pve-ipv4-config" => {
            value == "dhcp"
                || value == "manual"
                || value.split_once('/').is_some_and(|(a, p)| {
                    a.parse::<std::net::Ipv4Addr>().is_ok()
                        && p.parse::<u8>().is_ok_and(|p| p <= 32)
                })
        }
        "pve-ipv6-config" => {
            matches!(value, "auto" | "dhcp" | "manual")
                || value.split_once('/').is_some_and(|(a, p)| {
                    a.parse::<std::net::Ipv6Addr>().is_ok()
                        && p.parse::<u8>().is_ok_and(|p| p <= 128)
                })
        }
        "lxc-ip-with-ll-iface-list" => split_list(value).all(|ip| {
            let ip = ip.split_once('%').map_or(ip, |(a, _)| a);
            ip.parse::<std::net::IpAddr>().is_ok()
        }),
        "disk-size" => re_match(r"^\d+(\.\d+)?[KMGT]?$", value),
        "pve-storage-content" => STORAGE_CONTENT.contains(&value),
        "pve-storage-content-list" => split_list(value).all(|c| STORAGE_CONTENT.contains(&c)),
        "pve-volume-id" => re_match(r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$", value),
        "pve-lxc-mp-string" => !value.is_empty() && !value.contains(','),
        "pve-lxc-dev-string" => value.starts_with("/dev/"),
        "pve-ct-timezone" => value == "host" || re_match(r"^[A-Za-z0-9_+\-/]+$", value),
        "pve-startup-order" => value
            .split(',')
            .all(|p| re_match(r"^(?:order=)?\d+$", p) || re_match(r"^(?:up|down)=\d+$", p)),
        "pve-priv-list" => split_list(value).all(|p| re_match(r"^[A-Za-z.]+$", p)),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("value '{value}' does not match format '{format}'"))
    }
}
