//! Proxmox task identifiers (UPIDs).
//!
//! Format (pve-common `UPID.pm`, REFERENCE.md §1.5):
//! `UPID:<node>:<pid 8 hex>:<pstart 8-9 hex>:<starttime 8 hex>:<type>:<id>:<user>:`
//! — the trailing colon is part of the UPID. The original text is kept and
//! printed unchanged, because the server looks tasks up by the exact string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::propstring::PropertyError;

/// A parsed task id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    /// Node the task runs on.
    pub node: String,
    /// Worker process id.
    pub pid: u32,
    /// Process start time in clock ticks since boot.
    pub pstart: u64,
    /// Task start time, Unix epoch seconds.
    pub starttime: i64,
    /// Task type, e.g. `vzcreate`, `vzstart`, `download`.
    pub task_type: String,
    /// Task object id, usually the VMID (may be empty).
    pub id: String,
    /// User (or `user@realm!tokenid`) that started the task.
    pub user: String,
}

impl Upid {
    /// Build a UPID from its parts (printed the way PVE prints it).
    pub fn new(
        node: &str,
        pid: u32,
        pstart: u64,
        starttime: i64,
        task_type: &str,
        id: &str,
        user: &str,
    ) -> Self {
        let raw = format!(
            "UPID:{node}:{pid:08X}:{pstart:08X}:{:08X}:{task_type}:{id}:{user}:",
            starttime.max(0)
        );
        Upid {
            raw,
            node: node.to_string(),
            pid,
            pstart,
            starttime,
            task_type: task_type.to_string(),
            id: id.to_string(),
            user: user.to_string(),
        }
    }

    /// The exact UPID text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The VMID the task is about, when its id is numeric.
    pub fn vmid(&self) -> Option<u32> {
        self.id.parse().ok()
    }
}

fn is_hex(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn valid_node(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn valid_field(s: &str, allow_empty: bool) -> bool {
    (allow_empty || !s.is_empty()) && !s.chars().any(|c| c == ':' || c == '/' || c.is_whitespace())
}

impl FromStr for Upid {
    type Err = PropertyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            PropertyError(format!(
                "'{s}' is not a valid UPID (UPID:node:pid:pstart:starttime:type:id:user:)"
            ))
        };
        let rest = s.strip_prefix("UPID:").ok_or_else(bad)?;
        let rest = rest.strip_suffix(':').ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() != 7 {
            return Err(bad());
        }
        let (node, pid, pstart, start, ty, id, user) = (
            parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6],
        );
        if !valid_node(node)
            || !is_hex(pid, 8, 8)
            || !is_hex(pstart, 8, 9)
            || !is_hex(start, 8, 8)
            || !valid_field(ty, false)
            || !valid_field(id, true)
            || !valid_field(user, false)
        {
            return Err(bad());
        }
        Ok(Upid {
            raw: s.to_string(),
            node: node.to_string(),
            pid: u32::from_str_radix(pid, 16).map_err(|_| bad())?,
            pstart: u64::from_str_radix(pstart, 16).map_err(|_| bad())?,
            starttime: i64::from_str_radix(start, 16).map_err(|_| bad())?,
            task_type: ty.to_string(),
            id: id.to_string(),
            user: user.to_string(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s = "UPID:proxmox2:000D7AA2:08D5A17C:63DF62A5:vzclone:200:root@pam!api_token:";
        let u: Upid = s.parse().unwrap();
        assert_eq!(u.node, "proxmox2");
        assert_eq!(u.pid, 0x000D7AA2);
        assert_eq!(u.pstart, 0x08D5A17C);
        assert_eq!(u.starttime, 0x63DF62A5);
        assert_eq!(u.task_type, "vzclone");
        assert_eq!(u.vmid(), Some(200));
        assert_eq!(u.user, "root@pam!api_token");
        assert_eq!(u.to_string(), s);
        let built = Upid::new(
            "proxmox2",
            0xD7AA2,
            0x8D5A17C,
            0x63DF62A5,
            "vzclone",
            "200",
            "root@pam!api_token",
        );
        assert_eq!(built, u);
        // 9-digit pstart and empty id
        let s = "UPID:pve:00001234:1A2B3C4D5:6500AAAA:download::root@pam:";
        let u: Upid = s.parse().unwrap();
        assert_eq!(u.id, "");
        assert_eq!(u.to_string(), s);
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "UPID:pve:1:2:3:t:i:u:",
            "UPID:pve:00001234:1A2B3C4D:6500AAAA:vzstart:100:root@pam",
            "UPID:-pve:00001234:1A2B3C4D:6500AAAA:vzstart:100:root@pam:",
            "XPID:pve:00001234:1A2B3C4D:6500AAAA:vzstart:100:root@pam:",
        ] {
            assert!(s.parse::<Upid>().is_err(), "{s}");
        }
    }
}
