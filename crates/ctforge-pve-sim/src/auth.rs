//! Authentication and authorization: users, API tokens, a small ACL/role model,
//! PVE-format tickets (`PVE:user@realm:HEXTIME::sig`), CSRF tokens, TFA half
//! tickets (`PVE:!tfa!<challenge>:…`) and TOTP verification.

use std::collections::BTreeSet;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// A user of the simulated cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// `name@realm`.
    pub userid: String,
    /// Password (realms `pam` and `pve` are both password based here).
    pub password: String,
    /// Base32 TOTP secret: when set, login needs a second factor.
    pub totp_secret: Option<String>,
    /// Disabled users are refused.
    pub enabled: bool,
}

/// An API token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    /// Full id `user@realm!name`.
    pub full_id: String,
    /// Secret (UUID).
    pub secret: String,
    /// Privilege separation: effective privileges = user ∩ token ACLs.
    pub privsep: bool,
    /// Expiry, epoch seconds (0 = never).
    pub expire: u64,
    /// Comment.
    pub comment: Option<String>,
}

impl Token {
    /// The owning user id.
    pub fn user(&self) -> &str {
        self.full_id.split('!').next().unwrap_or("")
    }
    /// The token name (after `!`).
    pub fn name(&self) -> &str {
        self.full_id.split('!').nth(1).unwrap_or("")
    }
}

/// An ACL entry granting a role to a user or token on a path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AclEntry {
    /// ACL path (`/`, `/vms`, `/vms/100`, `/storage/local`, …).
    pub path: String,
    /// User id or full token id.
    pub ugid: String,
    /// Role name.
    pub role: String,
    /// Propagate to sub-paths.
    pub propagate: bool,
}

/// Who is calling: a user with a ticket, or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user@realm`.
    pub userid: String,
    /// Token name when authenticated with an API token.
    pub tokenid: Option<String>,
}

impl Identity {
    /// `user@realm` or `user@realm!token` (as shown in task UPIDs).
    pub fn auth_id(&self) -> String {
        match &self.tokenid {
            Some(t) => format!("{}!{}", self.userid, t),
            None => self.userid.clone(),
        }
    }
    /// Literally `root@pam` with a ticket (the check some handlers make).
    pub fn is_root_pam(&self) -> bool {
        self.userid == "root@pam" && self.tokenid.is_none()
    }
}

/// All privileges known to the simulator (PVE 9).
pub const ALL_PRIVS: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.Unrestricted",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];

/// Privileges of a role (unknown roles have none).
pub fn role_privs(role: &str) -> Vec<&'static str> {
    match role {
        "Administrator" => ALL_PRIVS.to_vec(),
        "PVEAdmin" => ALL_PRIVS
            .iter()
            .copied()
            .filter(|p| !matches!(*p, "Permissions.Modify" | "Realm.Allocate"))
            .collect(),
        "PVEVMAdmin" => ALL_PRIVS
            .iter()
            .copied()
            .filter(|p| {
                p.starts_with("VM.") || *p == "Datastore.AllocateSpace" || *p == "Datastore.Audit"
            })
            .collect(),
        "PVEVMUser" => vec![
            "VM.Audit",
            "VM.Console",
            "VM.Backup",
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.PowerMgmt",
        ],
        "PVEAuditor" => vec![
            "Datastore.Audit",
            "Mapping.Audit",
            "Pool.Audit",
            "SDN.Audit",
            "Sys.Audit",
            "VM.Audit",
            "VM.GuestAgent.Audit",
        ],
        "SimCtViewer" => vec!["VM.Audit", "VM.Console"],
        "PVESDNUser" => vec!["SDN.Audit", "SDN.Use"],
        "PVEDatastoreUser" => vec!["Datastore.AllocateSpace", "Datastore.Audit"],
        "PVEDatastoreAdmin" => vec![
            "Datastore.Allocate",
            "Datastore.AllocateSpace",
            "Datastore.AllocateTemplate",
            "Datastore.Audit",
        ],
        "PVEPoolUser" => vec!["Pool.Audit"],
        "PVEPoolAdmin" => vec!["Pool.Allocate", "Pool.Audit"],
        _ => Vec::new(),
    }
}

/// Whether an ACL entry at `acl_path` applies to `path`.
pub fn acl_applies(acl_path: &str, propagate: bool, path: &str) -> bool {
    if acl_path == path {
        return true;
    }
    if !propagate {
        return false;
    }
    if acl_path == "/" {
        return true;
    }
    path.starts_with(&format!("{acl_path}/"))
}

/// The privilege areas of the `cap` object of a login answer.
pub const CAP_AREAS: &[(&str, &str, &[&str])] = &[
    (
        "vms",
        "/vms",
        &[
            "VM.Allocate",
            "VM.Audit",
            "VM.Backup",
            "VM.Clone",
            "VM.Config.CDROM",
            "VM.Config.CPU",
            "VM.Config.Cloudinit",
            "VM.Config.Disk",
            "VM.Config.HWType",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.Options",
            "VM.Console",
            "VM.GuestAgent.Audit",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.FileWrite",
            "VM.GuestAgent.Unrestricted",
            "VM.Migrate",
            "VM.PowerMgmt",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
            "Permissions.Modify",
        ],
    ),
    (
        "storage",
        "/storage",
        &[
            "Datastore.Allocate",
            "Datastore.AllocateSpace",
            "Datastore.AllocateTemplate",
            "Datastore.Audit",
            "Permissions.Modify",
        ],
    ),
    (
        "access",
        "/access",
        &[
            "User.Modify",
            "Group.Allocate",
            "Permissions.Modify",
            "Realm.Allocate",
            "Realm.AllocateUser",
        ],
    ),
    (
        "nodes",
        "/nodes",
        &[
            "Sys.AccessNetwork",
            "Sys.Audit",
            "Sys.Console",
            "Sys.Incoming",
            "Sys.Modify",
            "Sys.PowerMgmt",
            "Sys.Syslog",
            "Permissions.Modify",
        ],
    ),
    (
        "dc",
        "/",
        &[
            "Sys.Audit",
            "Sys.Modify",
            "SDN.Allocate",
            "SDN.Audit",
            "SDN.Use",
        ],
    ),
    (
        "sdn",
        "/sdn",
        &["SDN.Allocate", "SDN.Audit", "SDN.Use", "Permissions.Modify"],
    ),
    (
        "mapping",
        "/mapping",
        &[
            "Mapping.Audit",
            "Mapping.Modify",
            "Mapping.Use",
            "Permissions.Modify",
        ],
    ),
];

/// Privileges granted to `ugid` on `path` by the ACL list.
pub fn acl_privs(acl: &[AclEntry], ugid: &str, path: &str) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for e in acl.iter().filter(|e| e.ugid == ugid) {
        if acl_applies(&e.path, e.propagate, path) {
            out.extend(role_privs(&e.role));
        }
    }
    out
}

type HmacSha256 = Hmac<Sha256>;

fn sign(key: &[u8], data: &str) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return String::new();
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Create a ticket `PVE:<userid>:<HEXTIME>::<sig>`.
pub fn make_ticket(key: &[u8], userid: &str, now: u64) -> String {
    let plain = format!("PVE:{userid}:{now:08X}");
    format!("{plain}::{}", sign(key, &plain))
}

/// Verify a full ticket: returns the user id if the signature is valid and the
/// age is within `(-300, lifetime)` seconds.
pub fn verify_ticket(key: &[u8], ticket: &str, now: u64, lifetime: u64) -> Option<String> {
    let (plain, sig) = ticket.split_once("::")?;
    let mut parts = plain.splitn(3, ':');
    if parts.next()? != "PVE" {
        return None;
    }
    let user = parts.next()?;
    let hex = parts.next()?;
    if user.starts_with("!tfa!") || !ct_eq(&sign(key, plain), sig) {
        return None;
    }
    let t = u64::from_str_radix(hex, 16).ok()?;
    let age = now as i64 - t as i64;
    if age > -300 && age < lifetime as i64 {
        Some(user.to_string())
    } else {
        None
    }
}

/// A TFA half ticket `PVE:!tfa!<url-encoded challenge JSON>:<HEXTIME>::<sig>`;
/// the signature also covers the user name.
pub fn make_tfa_ticket(key: &[u8], userid: &str, challenge_json: &str, now: u64) -> String {
    let enc: String =
        percent_encoding::utf8_percent_encode(challenge_json, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let plain = format!("PVE:!tfa!{enc}:{now:08X}");
    format!("{plain}::{}", sign(key, &format!("{userid}:{plain}")))
}

/// Verify a TFA half ticket for `userid` (valid for `lifetime` seconds).
pub fn verify_tfa_ticket(key: &[u8], userid: &str, ticket: &str, now: u64, lifetime: u64) -> bool {
    let Some((plain, sig)) = ticket.split_once("::") else {
        return false;
    };
    if !plain.starts_with("PVE:!tfa!") || !ct_eq(&sign(key, &format!("{userid}:{plain}")), sig) {
        return false;
    }
    let Some(hex) = plain.rsplit(':').next() else {
        return false;
    };
    let Ok(t) = u64::from_str_radix(hex, 16) else {
        return false;
    };
    let age = now as i64 - t as i64;
    age > -300 && age < lifetime as i64
}

/// A CSRF prevention token `<HEXTIME>:<sig>` bound to the user.
pub fn make_csrf(key: &[u8], userid: &str, now: u64) -> String {
    let ts = format!("{now:08X}");
    format!("{ts}:{}", sign(key, &format!("{ts}:{userid}")))
}

/// Verify a CSRF token for the user.
pub fn verify_csrf(key: &[u8], userid: &str, token: &str, now: u64, lifetime: u64) -> bool {
    let Some((ts, sig)) = token.split_once(':') else {
        return false;
    };
    if !ct_eq(&sign(key, &format!("{ts}:{userid}")), sig) {
        return false;
    }
    let Ok(t) = u64::from_str_radix(ts, 16) else {
        return false;
    };
    let age = now as i64 - t as i64;
    age > -300 && age < lifetime as i64
}

/// Decode RFC 4648 base32 (no padding required, case-insensitive).
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut bits: u64 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::new();
    for c in s.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push(((bits >> nbits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// RFC 6238 TOTP (SHA-1, 30 s, 6 digits) for time step `counter`.
pub fn totp_code(secret: &[u8], counter: u64) -> String {
    type HmacSha1 = Hmac<sha1::Sha1>;
    let Ok(mut mac) = HmacSha1::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    format!("{:06}", bin % 1_000_000)
}

/// Check a TOTP code against a base32 secret with a ±1 step window.
pub fn verify_totp(secret_b32: &str, code: &str, now: u64) -> bool {
    let Some(secret) = base32_decode(secret_b32) else {
        return false;
    };
    let step = now / 30;
    [step.saturating_sub(1), step, step + 1]
        .iter()
        .any(|s| ct_eq(&totp_code(&secret, *s), code))
}

/// The current TOTP code of a base32 secret (for tests and demos).
pub fn current_totp(secret_b32: &str, now: u64) -> Option<String> {
    base32_decode(secret_b32).map(|s| totp_code(&s, now / 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_rfc6238_vector() {
        // RFC 6238 SHA-1 secret "12345678901234567890", T=59 → 94287082 (8 digits) → 287082.
        let code = totp_code(b"12345678901234567890", 59 / 30);
        assert_eq!(code, "287082");
        assert_eq!(base32_decode("GEZDGNBV").as_deref(), Some(&b"12345"[..]));
    }

    #[test]
    fn tickets_roundtrip() {
        let key = b"k";
        let t = make_ticket(key, "root@pam", 1000);
        assert!(t.starts_with("PVE:root@pam:000003E8::"));
        assert_eq!(
            verify_ticket(key, &t, 1100, 7200).as_deref(),
            Some("root@pam")
        );
        assert_eq!(verify_ticket(key, &t, 1000 + 7200, 7200), None);
        let c = make_csrf(key, "root@pam", 1000);
        assert!(verify_csrf(key, "root@pam", &c, 1001, 7200));
        assert!(!verify_csrf(key, "alice@pve", &c, 1001, 7200));
    }
}
