//! Parsers of what commands inside a container print: `systemctl list-units` and
//! `systemctl show`, `ss -tlnp`, the credentials archive, and which listening port belongs to
//! which unit. Pure functions shared by provisioning's discovery and by monitoring, so both read
//! a container the same way. They never fail on odd input: unknown lines are skipped.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine as _;

/// The properties monitoring reads from `systemctl show` for a tracked unit.
pub const UNIT_PROPERTIES: &str = "Id,ActiveState,SubState,UnitFileState,MainPID";

/// The state of one unit as `systemctl show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitState {
    /// Unit name (`nginx.service`).
    pub id: String,
    /// `active`, `inactive`, `failed`, `activating`, … (`unknown` when not printed).
    pub active: String,
    /// Sub-state (`running`, `dead`, `exited`, …).
    pub sub: String,
    /// Whether the unit file is enabled at boot.
    pub enabled: bool,
    /// Main process id (0 when not running).
    pub main_pid: u32,
}

/// One listening TCP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Local port.
    pub port: u16,
    /// Process name (empty when `ss` could not tell).
    pub process: String,
    /// Process id (0 when unknown).
    pub pid: u32,
}

/// Service unit names from `systemctl list-units --plain --no-legend` (first column).
pub fn unit_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.ends_with(".service"))
        .map(str::to_owned)
        .collect()
}

/// `systemctl show` output as one property map per unit (blocks separated by blank lines).
pub fn show_blocks(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut blocks = Vec::new();
    let mut current = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            current.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

/// Parses `systemctl show -p Id,ActiveState,SubState,UnitFileState,MainPID …` into unit states.
pub fn parse_show(text: &str) -> Vec<UnitState> {
    show_blocks(text)
        .into_iter()
        .filter_map(|map| {
            let get = |k: &str| map.get(k).map(String::as_str);
            Some(UnitState {
                id: get("Id")?.to_owned(),
                active: get("ActiveState")
                    .filter(|s| !s.is_empty())
                    .unwrap_or("unknown")
                    .to_owned(),
                sub: get("SubState").unwrap_or("").to_owned(),
                enabled: get("UnitFileState") == Some("enabled"),
                main_pid: get("MainPID").and_then(|p| p.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

/// Parses `ss -tlnp` into listening sockets, one per port (IPv4 and IPv6 merged).
pub fn parse_ports(text: &str) -> Vec<Listener> {
    let mut out: Vec<Listener> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("LISTEN")) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let Some(port) = cols
            .get(3)
            .and_then(|local| local.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        let process = line
            .split("((\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_owned();
        let pid = line
            .split("pid=")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if !out.iter().any(|l| l.port == port) {
            out.push(Listener { port, process, pid });
        }
    }
    out
}

/// The port a unit listens on: the socket owned by its main PID, else one whose process name
/// matches the unit's name (`nginx.service` ↔ `nginx`, `redis-server` ↔ `redis-server.service`).
pub fn port_of(unit: &UnitState, listeners: &[Listener]) -> Option<u16> {
    let stem = unit.id.trim_end_matches(".service");
    listeners
        .iter()
        .find(|l| unit.main_pid != 0 && l.pid == unit.main_pid)
        .or_else(|| {
            listeners.iter().find(|l| {
                !l.process.is_empty()
                    && (stem.starts_with(l.process.as_str()) || l.process.starts_with(stem))
            })
        })
        .map(|l| l.port)
}

/// Largest credential file read; bigger files are skipped (credentials are short).
pub const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// Decodes the credentials directory as `tar -cf - . | base64` prints it: the regular files
/// directly in the directory, as (name, content without its trailing newline). Files in
/// subdirectories and files over [`MAX_CREDENTIAL_BYTES`] are skipped.
pub fn parse_credentials_archive(base64_text: &str) -> Result<Vec<(String, String)>, String> {
    let compact: String = base64_text.split_whitespace().collect();
    if compact.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("the credentials archive is not valid base64: {e}"))?;
    let mut archive = tar::Archive::new(bytes.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| format!("the credentials archive is unreadable: {e}"))?;
    let mut out = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the credentials archive is corrupt: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = raw.trim_start_matches("./").to_owned();
        if name.is_empty() || name.contains('/') || entry.size() > MAX_CREDENTIAL_BYTES {
            continue;
        }
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| format!("cannot read credential {name:?} from the archive: {e}"))?;
        let value = String::from_utf8_lossy(&content)
            .trim_end_matches('\n')
            .to_owned();
        out.push((name, value));
    }
    out.sort();
    Ok(out)
}

/// Decodes the library's credentials as `tar -C /etc/infrahaus -cf - credentials | base64`
/// prints them, in either form: a `KEY=VALUE` file (`#` comments and blank lines skipped, the
/// last value of a key wins) or a directory of files (name, content). Sorted by name.
pub fn parse_library_credentials(base64_text: &str) -> Result<Vec<(String, String)>, String> {
    let compact: String = base64_text.split_whitespace().collect();
    if compact.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("the credentials archive is not valid base64: {e}"))?;
    let mut archive = tar::Archive::new(bytes.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| format!("the credentials archive is unreadable: {e}"))?;
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the credentials archive is corrupt: {e}"))?;
        if !entry.header().entry_type().is_file() || entry.size() > MAX_CREDENTIAL_BYTES {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = raw
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| format!("cannot read {path:?} from the archive: {e}"))?;
        let text = String::from_utf8_lossy(&content).into_owned();
        match path.split_once('/') {
            None => {
                for line in text.lines() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let line = line.strip_prefix("export ").unwrap_or(line);
                    if let Some((key, value)) = line.split_once('=') {
                        let key = key.trim();
                        if !key.is_empty() && !key.contains(char::is_whitespace) {
                            found.insert(key.to_owned(), unquote(value.trim()).to_owned());
                        }
                    }
                }
            }
            Some((_, name)) if !name.is_empty() && !name.contains('/') => {
                found.insert(name.to_owned(), text.trim_end_matches('\n').to_owned());
            }
            Some(_) => {}
        }
    }
    Ok(found.into_iter().collect())
}

/// A value without one pair of surrounding quotes.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_systemctl_and_ss() {
        let show = "Id=nginx.service\nActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=321\n\nId=app.service\nActiveState=failed\nSubState=failed\nUnitFileState=disabled\nMainPID=0\n";
        let parsed = parse_show(show);
        assert_eq!(
            parsed[0],
            UnitState {
                id: "nginx.service".into(),
                active: "active".into(),
                sub: "running".into(),
                enabled: true,
                main_pid: 321,
            }
        );
        assert_eq!(parsed[1].active, "failed");
        assert!(!parsed[1].enabled);
        let ss = "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\nLISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:((\"nginx\",pid=321,fd=6))\nLISTEN 0 511 [::]:80 [::]:* users:((\"nginx\",pid=321,fd=7))\nLISTEN 0 128 127.0.0.1:5432 0.0.0.0:* users:((\"postgres\",pid=9,fd=3))\n";
        let ports = parse_ports(ss);
        assert_eq!(
            ports,
            vec![
                Listener {
                    port: 80,
                    process: "nginx".into(),
                    pid: 321
                },
                Listener {
                    port: 5432,
                    process: "postgres".into(),
                    pid: 9
                }
            ]
        );
        assert_eq!(port_of(&parsed[0], &ports), Some(80));
        let pg = UnitState {
            id: "postgresql@15-main.service".into(),
            active: "active".into(),
            sub: "running".into(),
            enabled: true,
            main_pid: 9,
        };
        assert_eq!(port_of(&pg, &ports), Some(5432), "by pid");
        assert_eq!(port_of(&parsed[1], &ports), None);
        assert_eq!(
            unit_names(
                "ssh.service loaded active running OpenSSH\ncron.service loaded\nfoo.socket x\n"
            ),
            ["ssh.service", "cron.service"]
        );
    }

    #[test]
    fn odd_show_output_is_skipped_not_fatal() {
        assert!(parse_show("Failed to connect to bus: No such file\n").is_empty());
        let parsed = parse_show("\n\nId=x.service\nActiveState=\n\n\n");
        assert_eq!(parsed[0].active, "unknown");
    }

    fn archive(entries: &[(&str, &[u8])]) -> String {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            // Raw names as GNU tar writes them (`./name`), bypassing path normalisation.
            let field = &mut h.as_gnu_mut().unwrap().name;
            field[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_entry_type(if name.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_cksum();
            builder.append(&h, *data).unwrap();
        }
        base64::engine::general_purpose::STANDARD.encode(builder.into_inner().unwrap())
    }

    #[test]
    fn library_credentials_in_both_forms() {
        let file = archive(&[(
            "credentials",
            b"# Credentials\n\nCODE_SERVER_PASSWORD=abc=def\nDB_PASS=\"q\"\nCODE_SERVER_PASSWORD=new\n",
        )]);
        assert_eq!(
            parse_library_credentials(&file).unwrap(),
            vec![
                ("CODE_SERVER_PASSWORD".to_owned(), "new".to_owned()),
                ("DB_PASS".to_owned(), "q".to_owned())
            ]
        );
        let dir = archive(&[
            ("./credentials/", b""),
            ("./credentials/FILEBROWSER_PASSWORD", b"pw\n"),
            ("./credentials/deep/x", b"skip"),
        ]);
        assert_eq!(
            parse_library_credentials(&dir).unwrap(),
            vec![("FILEBROWSER_PASSWORD".to_owned(), "pw".to_owned())]
        );
        assert_eq!(parse_library_credentials("").unwrap(), vec![]);
    }

    #[test]
    fn credentials_archive_keeps_top_level_files() {
        let text = archive(&[
            ("./", b""),
            ("./admin-password", b"s3cret\n"),
            ("./@@ctforge:rc:0", b"line1\nline2"),
            ("./sub/", b""),
            ("./sub/nested", b"x"),
        ]);
        // base64 wrapped at 76 columns like the real tool.
        let wrapped: String = text
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert_eq!(
            parse_credentials_archive(&wrapped).unwrap(),
            vec![
                ("@@ctforge:rc:0".to_owned(), "line1\nline2".to_owned()),
                ("admin-password".to_owned(), "s3cret".to_owned()),
            ]
        );
        assert_eq!(parse_credentials_archive("\n").unwrap(), vec![]);
        assert!(parse_credentials_archive("%%%").is_err());
    }
}
