//! `template.conf`: bash-style `KEY=VALUE` lines describing the container.
//!
//! Parsing never fails: [`parse_conf`] always returns a [`TemplateConfig`] plus
//! diagnostics. Lines may be blank, `#` comments, or assignments with an
//! optional leading `export `. Values follow bash quoting (see the `shell`
//! module): `"..."`, `'...'`, `${VAR:-default}` (the default is the value) and
//! trailing `# comments`. Keys ctforge does not know are kept, in order, in
//! [`TemplateConfig::extra`] and reported as warnings (except the template library's own
//! keys, [`library_key_note`], which are informational); when a key is set twice
//! the last value wins, as in bash.
//!
//! The original text is kept in [`TemplateConfig::raw`]. When the file is written
//! back and the model still equals what that text parses to, the text is written
//! unchanged (comments, quoting and `${VAR:-default}` survive); otherwise the
//! canonical form from [`render_conf_canonical`] is written.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, Severity, line_no};
use crate::shell;

/// Relative path of the config file inside a template directory.
pub const CONF_FILE: &str = "template.conf";

/// Key: display name.
pub const KEY_APP: &str = "TEMPLATE_APP";
/// Key: description.
pub const KEY_DESCRIPTION: &str = "TEMPLATE_DESCRIPTION";
/// Key: semicolon-separated tags.
pub const KEY_TAGS: &str = "TEMPLATE_TAGS";
/// Key: CPU cores.
pub const KEY_CPU: &str = "TEMPLATE_CPU";
/// Key: memory in MiB.
pub const KEY_RAM: &str = "TEMPLATE_RAM";
/// Key: root disk size in GiB.
pub const KEY_DISK: &str = "TEMPLATE_DISK";
/// Key: swap in MiB (ctforge extension).
pub const KEY_SWAP: &str = "TEMPLATE_SWAP";
/// Key: OS, e.g. `debian`.
pub const KEY_OS: &str = "TEMPLATE_OS";
/// Key: OS version, e.g. `12`.
pub const KEY_VERSION: &str = "TEMPLATE_VERSION";
/// Key: unprivileged container (0/1).
pub const KEY_UNPRIVILEGED: &str = "TEMPLATE_UNPRIVILEGED";
/// Key: nesting feature (0/1).
pub const KEY_NESTING: &str = "TEMPLATE_NESTING";
/// Key: keyctl feature (0/1).
pub const KEY_KEYCTL: &str = "TEMPLATE_KEYCTL";
/// Key: fuse feature (0/1).
pub const KEY_FUSE: &str = "TEMPLATE_FUSE";
/// Key: Proxmox storage for the root disk (ctforge extension).
pub const KEY_STORAGE: &str = "TEMPLATE_STORAGE";
/// Key: network bridge (ctforge extension).
pub const KEY_BRIDGE: &str = "TEMPLATE_BRIDGE";
/// Key: what the template creates, `lxc` (default) or `vm`.
pub const KEY_TYPE: &str = "TEMPLATE_TYPE";
/// Key (vm): the QEMU machine type, e.g. `q35`.
pub const KEY_MACHINE: &str = "TEMPLATE_MACHINE";
/// Key (vm): the firmware, `seabios` or `ovmf`.
pub const KEY_BIOS: &str = "TEMPLATE_BIOS";
/// Key (vm): the cloud image the disk is imported from: a Proxmox volume
/// (`local:import/debian-12-genericcloud-amd64.qcow2`) or its file name.
pub const KEY_IMAGE: &str = "TEMPLATE_IMAGE";
/// Key (vm): the QEMU guest agent (0/1, default 1). Without it ctforge reaches the VM over SSH
/// with its own key for it, at the VM's static address.
pub const KEY_AGENT: &str = "TEMPLATE_AGENT";

/// Every key ctforge understands, in the order the canonical form writes them.
pub const KNOWN_KEYS: [&str; 20] = [
    KEY_APP,
    KEY_DESCRIPTION,
    KEY_TAGS,
    KEY_TYPE,
    KEY_CPU,
    KEY_RAM,
    KEY_DISK,
    KEY_SWAP,
    KEY_OS,
    KEY_VERSION,
    KEY_UNPRIVILEGED,
    KEY_NESTING,
    KEY_KEYCTL,
    KEY_FUSE,
    KEY_STORAGE,
    KEY_BRIDGE,
    KEY_MACHINE,
    KEY_BIOS,
    KEY_IMAGE,
    KEY_AGENT,
];

/// Keys that only mean something for containers (a vm template that sets one gets a warning).
pub const LXC_ONLY_KEYS: [&str; 5] = [
    KEY_SWAP,
    KEY_UNPRIVILEGED,
    KEY_NESTING,
    KEY_KEYCTL,
    KEY_FUSE,
];
/// Keys that only mean something for virtual machines.
pub const VM_ONLY_KEYS: [&str; 4] = [KEY_MACHINE, KEY_BIOS, KEY_IMAGE, KEY_AGENT];

/// What a template creates: `TEMPLATE_TYPE=lxc` (the default) or `TEMPLATE_TYPE=vm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateType {
    /// A Proxmox container (`POST /nodes/{node}/lxc`).
    #[default]
    Lxc,
    /// A QEMU virtual machine (`POST /nodes/{node}/qemu`) from a cloud image.
    Vm,
}

impl TemplateType {
    /// The text in `template.conf`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateType::Lxc => "lxc",
            TemplateType::Vm => "vm",
        }
    }
}

impl std::str::FromStr for TemplateType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lxc" => Ok(TemplateType::Lxc),
            "vm" => Ok(TemplateType::Vm),
            other => Err(format!(
                "invalid `{KEY_TYPE}` value `{other}`: use `lxc` (a container) or `vm` (a virtual machine)"
            )),
        }
    }
}

/// Largest number of cores Proxmox accepts for a container.
pub const MAX_CPU: u32 = 8192;
/// Smallest memory size Proxmox accepts for a container, in MiB.
pub const MIN_RAM_MIB: u32 = 16;

/// The typed contents of `template.conf`. Every field is optional: a key that
/// is absent (or empty) is `None` and the app chooses a default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateConfig {
    /// `TEMPLATE_APP`: display name.
    pub app: Option<String>,
    /// `TEMPLATE_DESCRIPTION`.
    pub description: Option<String>,
    /// `TEMPLATE_TAGS`, split at `;`, trimmed, empty entries dropped.
    pub tags: Vec<String>,
    /// `TEMPLATE_CPU`: cores.
    pub cpu: Option<u32>,
    /// `TEMPLATE_RAM`: memory in MiB.
    pub ram_mib: Option<u32>,
    /// `TEMPLATE_DISK`: root disk in GiB.
    pub disk_gib: Option<u32>,
    /// `TEMPLATE_SWAP`: swap in MiB.
    pub swap_mib: Option<u32>,
    /// `TEMPLATE_OS`, e.g. `debian`.
    pub os: Option<String>,
    /// `TEMPLATE_VERSION`, e.g. `12`.
    pub os_version: Option<String>,
    /// `TEMPLATE_UNPRIVILEGED` (`1` = true).
    pub unprivileged: Option<bool>,
    /// `TEMPLATE_NESTING`.
    pub nesting: Option<bool>,
    /// `TEMPLATE_KEYCTL`.
    pub keyctl: Option<bool>,
    /// `TEMPLATE_FUSE`.
    pub fuse: Option<bool>,
    /// `TEMPLATE_STORAGE`: Proxmox storage id for the root disk.
    pub storage: Option<String>,
    /// `TEMPLATE_BRIDGE`: network bridge, e.g. `vmbr0`.
    pub bridge: Option<String>,
    /// `TEMPLATE_TYPE`: `lxc` or `vm`; absent means `lxc` (see [`TemplateConfig::kind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_type: Option<TemplateType>,
    /// `TEMPLATE_MACHINE` (vm): QEMU machine type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// `TEMPLATE_BIOS` (vm): `seabios` or `ovmf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios: Option<String>,
    /// `TEMPLATE_IMAGE` (vm): the cloud image to import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `TEMPLATE_AGENT` (vm): the QEMU guest agent; absent means on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<bool>,
    /// Keys ctforge does not know, with their values, in file order.
    pub extra: Vec<(String, String)>,
    /// The original file text, re-emitted on write when the model is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl TemplateConfig {
    /// This config without [`raw`](Self::raw), for comparing content.
    pub fn without_raw(&self) -> TemplateConfig {
        TemplateConfig {
            raw: None,
            ..self.clone()
        }
    }

    /// What the template creates (`TEMPLATE_TYPE`, default `lxc`).
    pub fn kind(&self) -> TemplateType {
        self.template_type.unwrap_or_default()
    }
}

/// What kind of value a known key holds.
enum Kind {
    Text,
    Tags,
    Number { unit: &'static str, example: u32 },
    Bool,
    Type,
}

fn kind_of(key: &str) -> Option<Kind> {
    Some(match key {
        KEY_APP | KEY_DESCRIPTION | KEY_OS | KEY_VERSION | KEY_STORAGE | KEY_BRIDGE
        | KEY_MACHINE | KEY_BIOS | KEY_IMAGE => Kind::Text,
        KEY_TYPE => Kind::Type,
        KEY_TAGS => Kind::Tags,
        KEY_CPU => Kind::Number {
            unit: "cores",
            example: 2,
        },
        KEY_RAM => Kind::Number {
            unit: "MiB",
            example: 2048,
        },
        KEY_DISK => Kind::Number {
            unit: "GiB",
            example: 8,
        },
        KEY_SWAP => Kind::Number {
            unit: "MiB",
            example: 512,
        },
        KEY_UNPRIVILEGED | KEY_NESTING | KEY_KEYCTL | KEY_FUSE | KEY_AGENT => Kind::Bool,
        _ => return None,
    })
}

fn text_field<'a>(c: &'a mut TemplateConfig, key: &str) -> Option<&'a mut Option<String>> {
    Some(match key {
        KEY_APP => &mut c.app,
        KEY_DESCRIPTION => &mut c.description,
        KEY_OS => &mut c.os,
        KEY_VERSION => &mut c.os_version,
        KEY_STORAGE => &mut c.storage,
        KEY_BRIDGE => &mut c.bridge,
        KEY_MACHINE => &mut c.machine,
        KEY_BIOS => &mut c.bios,
        KEY_IMAGE => &mut c.image,
        _ => return None,
    })
}

fn number_field<'a>(c: &'a mut TemplateConfig, key: &str) -> Option<&'a mut Option<u32>> {
    Some(match key {
        KEY_CPU => &mut c.cpu,
        KEY_RAM => &mut c.ram_mib,
        KEY_DISK => &mut c.disk_gib,
        KEY_SWAP => &mut c.swap_mib,
        _ => return None,
    })
}

fn bool_field<'a>(c: &'a mut TemplateConfig, key: &str) -> Option<&'a mut Option<bool>> {
    Some(match key {
        KEY_UNPRIVILEGED => &mut c.unprivileged,
        KEY_NESTING => &mut c.nesting,
        KEY_KEYCTL => &mut c.keyctl,
        KEY_FUSE => &mut c.fuse,
        KEY_AGENT => &mut c.agent,
        _ => return None,
    })
}

/// True if `key` is a valid bash variable name.
pub(crate) fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Splits `TEMPLATE_TAGS` into tags.
pub fn split_tags(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses `template.conf` text. Never fails and never panics; diagnostics name
/// the file `template.conf` and carry 1-based line numbers.
pub fn parse_conf(text: &str) -> (TemplateConfig, Vec<Diagnostic>) {
    let mut config = TemplateConfig::default();
    let mut diags = Vec::new();
    // Values assigned so far, for `$VAR` references, and where each key was set.
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut first_line: HashMap<String, u32> = HashMap::new();
    let mut last_line: HashMap<String, u32> = HashMap::new();
    // Position of each unknown key in `config.extra`.
    let mut extra_index: HashMap<String, usize> = HashMap::new();

    let text_no_bom = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw_line) in text_no_bom.split('\n').enumerate() {
        let line = line_no(index);
        let at = |severity: Severity, message: String| Diagnostic {
            file: CONF_FILE.into(),
            line,
            severity,
            message,
        };
        let content = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let statement = match trimmed.strip_prefix("export") {
            Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
            _ => trimmed,
        };
        let Some((key, value_text)) = split_assignment(statement) else {
            diags.push(not_an_assignment(statement, at));
            continue;
        };

        let lexed = shell::lex_value(value_text, &vars);
        for (severity, message) in lexed.issues {
            diags.push(at(severity, message));
        }
        let value = lexed.value;
        let line_u32 = line.unwrap_or(0);

        if let Some(first) = first_line.get(key) {
            diags.push(at(
                Severity::Warning,
                format!(
                    "duplicate key `{key}` (first set on line {first}): the last value wins; \
                     remove the other line"
                ),
            ));
        } else {
            first_line.insert(key.to_string(), line_u32);
        }
        last_line.insert(key.to_string(), line_u32);
        vars.insert(key.to_string(), value.clone());

        match kind_of(key) {
            Some(Kind::Text) => {
                if let Some(field) = text_field(&mut config, key) {
                    *field = Some(value);
                }
            }
            Some(Kind::Tags) => config.tags = split_tags(&value),
            Some(Kind::Type) => {
                config.template_type = if value.is_empty() {
                    diags.push(at(
                        Severity::Warning,
                        format!(
                            "empty `{KEY_TYPE}` is ignored, so the template creates a container: \
                             set `{KEY_TYPE}=vm` or `{KEY_TYPE}=lxc`, or remove the line"
                        ),
                    ));
                    None
                } else {
                    match value.parse::<TemplateType>() {
                        Ok(t) => Some(t),
                        Err(message) => {
                            diags.push(at(Severity::Error, message));
                            None
                        }
                    }
                };
            }
            Some(Kind::Number { unit, example }) => {
                let parsed = parse_number(key, &value, unit, example);
                let number = match parsed {
                    Ok(n) => n,
                    Err((severity, message)) => {
                        diags.push(at(severity, message));
                        None
                    }
                };
                if let Some(field) = number_field(&mut config, key) {
                    *field = number;
                }
            }
            Some(Kind::Bool) => {
                let (parsed, issue) = parse_bool(key, &value);
                if let Some((severity, message)) = issue {
                    diags.push(at(severity, message));
                }
                if let Some(field) = bool_field(&mut config, key) {
                    *field = parsed;
                }
            }
            None => match extra_index.get(key).and_then(|&i| config.extra.get_mut(i)) {
                Some(slot) => slot.1 = value,
                None => {
                    if library_key_note(key).is_none() {
                        diags.push(at(Severity::Warning, unknown_key_message(key)));
                    }
                    extra_index.insert(key.to_string(), config.extra.len());
                    config.extra.push((key.to_string(), value));
                }
            },
        }
    }

    let line_of = |key: &str| last_line.get(key).copied();
    diags.extend(check_values(&config, &line_of));
    config.raw = Some(text.to_string());
    (config, diags)
}

/// Splits `KEY=rest`; `None` when the statement is not an assignment.
fn split_assignment(statement: &str) -> Option<(&str, &str)> {
    let (key, value) = statement.split_once('=')?;
    is_identifier(key).then_some((key, value))
}

fn not_an_assignment(statement: &str, at: impl Fn(Severity, String) -> Diagnostic) -> Diagnostic {
    // `KEY = value` is a common slip: bash runs `KEY` as a command.
    if let Some((left, right)) = statement.split_once('=')
        && is_identifier(left.trim_end())
        && left.trim_end() != left
    {
        let key = left.trim_end();
        let value = right.split('#').next().unwrap_or_default().trim();
        let value = if value.is_empty() { "value" } else { value };
        return at(
            Severity::Error,
            format!(
                "spaces around `=` are not allowed in bash, so this line is ignored: write \
                 `{key}={value}` with no spaces"
            ),
        );
    }
    at(
        Severity::Warning,
        "not a `KEY=VALUE` assignment, so ctforge ignores this line: use only `KEY=VALUE` \
         lines, `#` comments and blank lines"
            .to_string(),
    )
}

/// Keys of the template library ctforge replaces that are not ctforge's own: kept (and
/// written back) like every extra key, but harmless, so no warning; the note says what ctforge
/// makes of them (shown as information).
pub fn library_key_note(key: &str) -> Option<&'static str> {
    match key {
        "TEMPLATE_CONFIG_PATH" => Some(
            "where the library's config-manager found this template in its repository; ctforge reads the template from its own root, so this is kept for the library only",
        ),
        "TEMPLATE_CONTAINER_USER" => Some(
            "the container's user: ctforge passes it to the scripts as CONTAINER_USER (CONFIG_CONTAINER_USER of the boot unit)",
        ),
        "TEMPLATE_HELPER_PATH" | "TEMPLATE_REPO_URL" | "TEMPLATE_BRANCH" => Some(
            "a setting of the library's config-manager; ctforge pushes the template itself, so this is kept for the library only",
        ),
        _ => None,
    }
}

fn unknown_key_message(key: &str) -> String {
    let suggestion = KNOWN_KEYS
        .iter()
        .map(|known| (edit_distance(key, known), *known))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default();
    format!(
        "unknown key `{key}` is kept but not used by ctforge: check the spelling{suggestion} \
         or remove it if nothing needs it"
    )
}

/// Levenshtein distance on ASCII-case-insensitive chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_uppercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_uppercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = Vec::with_capacity(b.len().saturating_add(1));
        cur.push(i.saturating_add(1));
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev.get(j).copied().unwrap_or(usize::MAX);
            let substitute = substitute.saturating_add(usize::from(ca != cb));
            let delete = prev.get(j.saturating_add(1)).copied().unwrap_or(usize::MAX);
            let insert = cur.last().copied().unwrap_or(usize::MAX);
            cur.push(
                substitute
                    .min(delete.saturating_add(1))
                    .min(insert.saturating_add(1)),
            );
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

type Issue = (Severity, String);

fn parse_number(key: &str, value: &str, unit: &str, example: u32) -> Result<Option<u32>, Issue> {
    if value.is_empty() {
        return Err((
            Severity::Warning,
            format!(
                "empty `{key}` is ignored, so the default is used: set a number like \
                 `{key}={example}` or remove the line"
            ),
        ));
    }
    if !value.chars().all(|c| c.is_ascii_digit()) {
        return Err((
            Severity::Error,
            format!(
                "invalid `{key}` value `{value}`: use a whole number of {unit}, like \
                 `{key}={example}`"
            ),
        ));
    }
    value.parse::<u32>().map(Some).map_err(|_| {
        (
            Severity::Error,
            format!(
                "`{key}` value `{value}` is too large: use a whole number of {unit} up to {}",
                u32::MAX
            ),
        )
    })
}

fn parse_bool(key: &str, value: &str) -> (Option<bool>, Option<Issue>) {
    match value {
        "1" => return (Some(true), None),
        "0" => return (Some(false), None),
        "" => {
            return (
                None,
                Some((
                    Severity::Warning,
                    format!(
                        "empty `{key}` is ignored, so the default is used: set `{key}=1` or \
                         `{key}=0`, or remove the line"
                    ),
                )),
            );
        }
        _ => {}
    }
    let word = value.to_ascii_lowercase();
    let parsed = match word.as_str() {
        "true" | "yes" | "on" => true,
        "false" | "no" | "off" => false,
        _ => {
            return (
                None,
                Some((
                    Severity::Error,
                    format!("invalid `{key}` value `{value}`: use `1` (on) or `0` (off)"),
                )),
            );
        }
    };
    let digit = if parsed { 1 } else { 0 };
    (
        Some(parsed),
        Some((
            Severity::Warning,
            format!(
                "boolean `{key}` is written as `{value}`: write `{key}={digit}`, the form \
                 other tools reading this file expect"
            ),
        )),
    )
}

/// Checks the values of a config (ranges, tag syntax, OS/version pairing).
/// Shared by [`parse_conf`] (with lines) and `Template::validate` (without).
pub(crate) fn check_values(
    c: &TemplateConfig,
    line_of: &dyn Fn(&str) -> Option<u32>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut err = |key: &str, message: String| {
        diags.push(Diagnostic::error(CONF_FILE, line_of(key), message));
    };
    if let Some(cpu) = c.cpu
        && !(1..=MAX_CPU).contains(&cpu)
    {
        err(
            KEY_CPU,
            format!("invalid `{KEY_CPU}` value `{cpu}`: use 1 to {MAX_CPU} cores"),
        );
    }
    if let Some(ram) = c.ram_mib
        && ram < MIN_RAM_MIB
    {
        err(
            KEY_RAM,
            format!(
                "invalid `{KEY_RAM}` value `{ram}`: use at least {MIN_RAM_MIB} MiB, like \
                 `{KEY_RAM}=512`"
            ),
        );
    }
    if c.disk_gib == Some(0) {
        err(
            KEY_DISK,
            format!("invalid `{KEY_DISK}` value `0`: use at least 1 GiB, like `{KEY_DISK}=8`"),
        );
    }
    for tag in &c.tags {
        // Tags that cannot be written at all are reported by `check_representable`.
        let representable = !tag.contains([';', '\n']) && !tag.is_empty() && tag.trim() == tag;
        if representable && !is_proxmox_tag(tag) {
            diags.push(Diagnostic::warning(
                CONF_FILE,
                line_of(KEY_TAGS),
                format!(
                    "tag `{tag}` is not a valid proxmox tag and will be rejected when the \
                     container is created: use letters, digits, `-`, `_`, `+` and `.` only"
                ),
            ));
        }
    }
    let set = |key: &str| -> bool {
        match key {
            KEY_SWAP => c.swap_mib.is_some(),
            KEY_UNPRIVILEGED => c.unprivileged.is_some(),
            KEY_NESTING => c.nesting.is_some(),
            KEY_KEYCTL => c.keyctl.is_some(),
            KEY_FUSE => c.fuse.is_some(),
            KEY_MACHINE => c.machine.is_some(),
            KEY_BIOS => c.bios.is_some(),
            KEY_IMAGE => c.image.is_some(),
            KEY_AGENT => c.agent.is_some(),
            _ => false,
        }
    };
    let (foreign, this, other): (&[&str], &str, &str) = match c.kind() {
        TemplateType::Vm => (&LXC_ONLY_KEYS, "a vm template", "containers"),
        TemplateType::Lxc => (&VM_ONLY_KEYS, "a container template", "virtual machines"),
    };
    for key in foreign.iter().filter(|k| set(k)) {
        let hint = match c.kind() {
            TemplateType::Vm => "remove it",
            TemplateType::Lxc => {
                "set `TEMPLATE_TYPE=vm` if this template is a virtual machine, or remove it"
            }
        };
        diags.push(Diagnostic::warning(
            CONF_FILE,
            line_of(key),
            format!("`{key}` applies to {other} only, so {this} ignores it: {hint}"),
        ));
    }
    if let Some(bios) = &c.bios
        && !matches!(bios.as_str(), "seabios" | "ovmf")
    {
        diags.push(Diagnostic::error(
            CONF_FILE,
            line_of(KEY_BIOS),
            format!("invalid `{KEY_BIOS}` value `{bios}`: use `seabios` or `ovmf`"),
        ));
    }
    if let Some(machine) = &c.machine
        && (machine.is_empty()
            || !machine
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | '+')))
    {
        diags.push(Diagnostic::error(
            CONF_FILE,
            line_of(KEY_MACHINE),
            format!(
                "invalid `{KEY_MACHINE}` value `{machine}`: use a QEMU machine type like `q35` \
                 or `pc-i440fx-9.0`"
            ),
        ));
    }
    if let Some(image) = &c.image
        && (image.is_empty() || image.contains(char::is_whitespace) || image.contains(','))
    {
        diags.push(Diagnostic::error(
            CONF_FILE,
            line_of(KEY_IMAGE),
            format!(
                "invalid `{KEY_IMAGE}` value `{image}`: name a cloud image volume like \
                 `local:import/debian-12-genericcloud-amd64.qcow2` (or its file name)"
            ),
        ));
    }
    if c.os_version.is_some() && c.os.is_none() {
        diags.push(Diagnostic::warning(
            CONF_FILE,
            line_of(KEY_VERSION),
            format!(
                "`{KEY_VERSION}` is set but `{KEY_OS}` is not: add `{KEY_OS}=debian` (or the os \
                 this version belongs to)"
            ),
        ));
    }
    diags
}

/// Proxmox's tag syntax: `[a-z0-9_][a-z0-9_\-+.]*`, case-insensitive.
pub(crate) fn is_proxmox_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
}

/// Checks that a config can be written to `template.conf` and read back as the
/// same model. Used by `Template::validate` for configs built in the UI.
pub(crate) fn check_representable(c: &TemplateConfig) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let file = Path::new(CONF_FILE);
    let texts = [
        (KEY_APP, &c.app),
        (KEY_DESCRIPTION, &c.description),
        (KEY_OS, &c.os),
        (KEY_VERSION, &c.os_version),
        (KEY_STORAGE, &c.storage),
        (KEY_BRIDGE, &c.bridge),
        (KEY_MACHINE, &c.machine),
        (KEY_BIOS, &c.bios),
        (KEY_IMAGE, &c.image),
    ];
    for (key, value) in texts {
        if let Some(value) = value
            && value.contains('\n')
        {
            diags.push(Diagnostic::error(file, None, line_break_message(key)));
        }
    }
    for tag in &c.tags {
        let message = if tag.trim().is_empty() {
            Some("empty tag: remove it".to_string())
        } else if tag.contains(';') {
            Some(format!(
                "tag `{tag}` contains `;`, which separates tags: split it into separate tags"
            ))
        } else if tag.trim() != tag {
            Some(format!(
                "tag `{tag}` has leading or trailing spaces: remove them"
            ))
        } else if tag.contains('\n') {
            Some(line_break_message(KEY_TAGS))
        } else {
            None
        };
        if let Some(message) = message {
            diags.push(Diagnostic::error(file, None, message));
        }
    }
    let mut seen_extra = HashSet::new();
    for (key, value) in &c.extra {
        if !is_identifier(key) {
            diags.push(Diagnostic::error(
                file,
                None,
                format!(
                    "invalid key name `{key}`: use letters, digits and `_`, not starting with \
                     a digit"
                ),
            ));
        } else if KNOWN_KEYS.contains(&key.as_str()) {
            diags.push(Diagnostic::error(
                file,
                None,
                format!(
                    "key `{key}` is a known key and must not be repeated among the extra keys: \
                     set its field instead"
                ),
            ));
        } else if !seen_extra.insert(key.as_str()) {
            diags.push(Diagnostic::error(
                file,
                None,
                format!("duplicate extra key `{key}`: keep only one"),
            ));
        } else if library_key_note(key).is_none() {
            diags.push(Diagnostic::warning(file, None, unknown_key_message(key)));
        }
        if value.contains('\n') {
            diags.push(Diagnostic::error(file, None, line_break_message(key)));
        }
    }
    diags
}

fn line_break_message(key: &str) -> String {
    format!("`{key}` contains a line break, which one `KEY=VALUE` line cannot hold: remove it")
}

/// Renders the canonical `template.conf` for `c`, ignoring [`TemplateConfig::raw`]:
/// known keys in [`KNOWN_KEYS`] order (absent ones left out), then the extra keys.
/// Numbers and booleans (`1`/`0`) are unquoted; text is double-quoted.
pub fn render_conf_canonical(c: &TemplateConfig) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key}={value}");
    };
    let text = |v: &Option<String>| v.as_deref().map(shell::quote);
    let number = |v: Option<u32>| v.map(|n| n.to_string());
    let boolean = |v: Option<bool>| v.map(|b| if b { "1" } else { "0" }.to_string());
    let tags = (!c.tags.is_empty()).then(|| shell::quote(&c.tags.join(";")));
    let fields = [
        (KEY_APP, text(&c.app)),
        (KEY_DESCRIPTION, text(&c.description)),
        (KEY_TAGS, tags),
        (KEY_TYPE, c.template_type.map(|t| t.as_str().to_owned())),
        (KEY_CPU, number(c.cpu)),
        (KEY_RAM, number(c.ram_mib)),
        (KEY_DISK, number(c.disk_gib)),
        (KEY_SWAP, number(c.swap_mib)),
        (KEY_OS, text(&c.os)),
        (KEY_VERSION, text(&c.os_version)),
        (KEY_UNPRIVILEGED, boolean(c.unprivileged)),
        (KEY_NESTING, boolean(c.nesting)),
        (KEY_KEYCTL, boolean(c.keyctl)),
        (KEY_FUSE, boolean(c.fuse)),
        (KEY_STORAGE, text(&c.storage)),
        (KEY_BRIDGE, text(&c.bridge)),
        (KEY_MACHINE, text(&c.machine)),
        (KEY_BIOS, text(&c.bios)),
        (KEY_IMAGE, text(&c.image)),
        (KEY_AGENT, boolean(c.agent)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            line(key, value);
        }
    }
    for (key, value) in &c.extra {
        line(key, shell::quote(value));
    }
    out
}

/// Renders `template.conf` for `c`: the original [`TemplateConfig::raw`] text
/// when it still parses to `c`, the canonical form otherwise.
pub fn render_conf(c: &TemplateConfig) -> String {
    if let Some(raw) = &c.raw
        && parse_conf(raw).0.without_raw() == c.without_raw()
    {
        return raw.clone();
    }
    render_conf_canonical(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        parse_conf(text).1.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn parses_known_keys() {
        let (c, d) = parse_conf(
            "TEMPLATE_APP=\"My App\"\nexport TEMPLATE_CPU=\"${TEMPLATE_CPU:-4}\"\n\
             TEMPLATE_TAGS='a; b;;c'\nTEMPLATE_NESTING=1 # on\nTEMPLATE_VERSION=12\nTEMPLATE_OS=debian\n",
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c.app.as_deref(), Some("My App"));
        assert_eq!(c.cpu, Some(4));
        assert_eq!(c.tags, ["a", "b", "c"]);
        assert_eq!(c.nesting, Some(true));
    }

    #[test]
    fn crlf_and_bom() {
        let (c, d) = parse_conf("\u{feff}TEMPLATE_OS=debian\r\nTEMPLATE_RAM=512\r\n");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c.os.as_deref(), Some("debian"));
        assert_eq!(c.ram_mib, Some(512));
    }

    #[test]
    fn references_earlier_keys() {
        let (c, _) = parse_conf("TEMPLATE_OS=debian\nTEMPLATE_DESCRIPTION=\"$TEMPLATE_OS box\"\n");
        assert_eq!(c.description.as_deref(), Some("debian box"));
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(
            messages("TEMPLATE_RMA=1\n"),
            [
                "template.conf:1: warning: unknown key `TEMPLATE_RMA` is kept but not used by \
              ctforge: check the spelling (did you mean `TEMPLATE_RAM`?) or remove it if \
              nothing needs it"
            ]
        );
    }

    #[test]
    fn canonical_round_trip() {
        let c = TemplateConfig {
            app: Some("A \"quoted\" $app".into()),
            tags: vec!["x".into(), "y z".into()],
            cpu: Some(2),
            fuse: Some(false),
            extra: vec![("FOO".into(), "bar".into())],
            ..TemplateConfig::default()
        };
        let text = render_conf_canonical(&c);
        let (parsed, _) = parse_conf(&text);
        assert_eq!(parsed.without_raw(), c);
        assert_eq!(render_conf(&parsed), text);
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("TEMPLATE_CPU", "template_cpu"), 0);
    }
}
