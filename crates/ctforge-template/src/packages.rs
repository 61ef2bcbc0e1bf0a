//! Package lists: `container-configs/packages/<bucket>.<manager>`.
//!
//! One package per line, optionally pinned with the manager's syntax
//! (`pkg=1.2` for apt/apk/dnf, `pkg@1.2` or `@scope/pkg@1.2` for npm,
//! `pkg==1.2` for pip). `#` starts a comment anywhere on a line; blank lines
//! are ignored. Names and versions are checked against each manager's rules,
//! which also keeps them safe to pass to a shell.
//!
//! The original text is kept in [`PackageList::raw`] and written back unchanged
//! while the packages still equal what it parses to.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, Severity, line_no};

/// File name of the optional custom installer script in `packages/`.
pub const CUSTOM_INSTALLER: &str = "custom.sh";

/// Extension of the library's custom package lists (`packages/<bucket>.custom`).
pub const CUSTOM_EXTENSION: &str = "custom";

/// A `packages/<bucket>.custom` list, kept as its text (written back unchanged); its lines
/// are `name|check_command|install_command[|timeout_seconds]` (see [`CustomList::parse`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomList {
    /// Bucket (the file name without `.custom`).
    pub bucket: String,
    /// The file's text.
    pub raw: String,
}

/// One line of a custom list: `check` decides whether `install` runs (status 0: installed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomPackage {
    /// Name shown in the log.
    pub name: String,
    /// Shell command; status 0 means the package is already there.
    pub check: String,
    /// Shell command installing it.
    pub install: String,
    /// Limit of the install command, seconds.
    pub timeout_secs: Option<u64>,
}

impl CustomList {
    /// File name: `<bucket>.custom`.
    pub fn file_name(&self) -> String {
        format!("{}.{CUSTOM_EXTENSION}", self.bucket)
    }

    /// The packages of the list, and problems as (line, message). `#` starts a comment line;
    /// blank lines are skipped.
    pub fn parse(&self) -> (Vec<CustomPackage>, Vec<(usize, String)>) {
        let mut packages = Vec::new();
        let mut problems = Vec::new();
        for (i, line) in self.raw.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = trimmed.splitn(4, '|').map(str::trim).collect();
            let (name, check, install) = match parts.as_slice() {
                [name, check, install, ..] => (*name, *check, *install),
                _ => {
                    problems.push((
                        i + 1,
                        "expected `name|check_command|install_command[|timeout_seconds]`"
                            .to_owned(),
                    ));
                    continue;
                }
            };
            if name.is_empty() || check.is_empty() || install.is_empty() {
                problems.push((
                    i + 1,
                    "name, check command and install command must not be empty".to_owned(),
                ));
                continue;
            }
            let timeout_secs = match parts.get(3) {
                None => None,
                Some(t) => match t.parse::<u64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        problems.push((
                            i + 1,
                            format!("timeout `{t}` is not a whole number of seconds"),
                        ));
                        continue;
                    }
                },
            };
            packages.push(CustomPackage {
                name: name.to_owned(),
                check: check.to_owned(),
                install: install.to_owned(),
                timeout_secs,
            });
        }
        (packages, problems)
    }
}

/// A package manager; also the extension of its package list files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// Debian/Ubuntu `apt` (`.apt`).
    Apt,
    /// Alpine `apk` (`.apk`).
    Apk,
    /// Fedora/RHEL `dnf` (`.dnf`).
    Dnf,
    /// Node.js `npm` (`.npm`), installed globally.
    Npm,
    /// Python `pip` (`.pip`).
    Pip,
}

impl PackageManager {
    /// All managers, in a stable order.
    pub const ALL: [PackageManager; 5] = [
        PackageManager::Apt,
        PackageManager::Apk,
        PackageManager::Dnf,
        PackageManager::Npm,
        PackageManager::Pip,
    ];

    /// The manager for a file extension (without the dot), e.g. `apt`.
    pub fn from_extension(ext: &str) -> Option<PackageManager> {
        PackageManager::ALL.into_iter().find(|m| m.as_str() == ext)
    }

    /// The lowercase name, which is also the file extension: `apt`, `apk`, `dnf`, `npm`, `pip`.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageManager::Apt => "apt",
            PackageManager::Apk => "apk",
            PackageManager::Dnf => "dnf",
            PackageManager::Npm => "npm",
            PackageManager::Pip => "pip",
        }
    }

    /// The pin syntax, for messages: `pkg=1.2`, `pkg@1.2` or `pkg==1.2`.
    pub fn pin_example(self) -> &'static str {
        match self {
            PackageManager::Apt | PackageManager::Apk | PackageManager::Dnf => "pkg=1.2",
            PackageManager::Npm => "pkg@1.2",
            PackageManager::Pip => "pkg==1.2",
        }
    }

    fn pin_separator(self) -> &'static str {
        match self {
            PackageManager::Apt | PackageManager::Apk | PackageManager::Dnf => "=",
            PackageManager::Npm => "@",
            PackageManager::Pip => "==",
        }
    }
}

impl fmt::Display for PackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error from parsing an unknown package manager name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPackageManager(pub String);

impl fmt::Display for UnknownPackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown package manager `{}`: use apt, apk, dnf, npm or pip",
            self.0
        )
    }
}

impl std::error::Error for UnknownPackageManager {}

impl FromStr for PackageManager {
    type Err = UnknownPackageManager;

    /// Parses `apt`, `apk`, `dnf`, `npm` or `pip` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PackageManager::from_extension(&s.trim().to_ascii_lowercase())
            .ok_or_else(|| UnknownPackageManager(s.to_string()))
    }
}

/// One package, optionally pinned to a version.
///
/// A package does not know its manager, so it has no `Display` of its own;
/// use [`Package::display`] (or [`Package::spec`]) with the manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Package {
    /// Package name (for npm including an `@scope/` prefix, for pip including `[extras]`).
    pub name: String,
    /// Pinned version, if any.
    pub version: Option<String>,
}

/// Writes a package in its manager's pin syntax; see [`Package::display`].
pub struct PackageDisplay<'a> {
    package: &'a Package,
    manager: PackageManager,
}

impl fmt::Display for PackageDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.package.name)?;
        if let Some(version) = &self.package.version {
            f.write_str(self.manager.pin_separator())?;
            f.write_str(version)?;
        }
        Ok(())
    }
}

impl Package {
    /// A package without a version pin.
    pub fn new(name: impl Into<String>) -> Package {
        Package {
            name: name.into(),
            version: None,
        }
    }

    /// A package pinned to `version`.
    pub fn pinned(name: impl Into<String>, version: impl Into<String>) -> Package {
        Package {
            name: name.into(),
            version: Some(version.into()),
        }
    }

    /// Displays the package in `manager`'s pin syntax, e.g. `curl=7.88`,
    /// `@scope/pkg@1.2` or `requests==2.31`.
    pub fn display(&self, manager: PackageManager) -> PackageDisplay<'_> {
        PackageDisplay {
            package: self,
            manager,
        }
    }

    /// The package as one line of a `manager` package list.
    pub fn spec(&self, manager: PackageManager) -> String {
        self.display(manager).to_string()
    }

    /// Parses one package spec (surrounding whitespace is ignored) for `manager`.
    /// The error is a lowercase message saying what is wrong and how to fix it.
    pub fn parse(manager: PackageManager, spec: &str) -> Result<Package, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("empty package name: write a package name, like `curl`".to_string());
        }
        if spec.chars().any(char::is_whitespace) {
            return Err(format!(
                "`{spec}` contains spaces: put one package per line, pinned like `{}`",
                manager.pin_example()
            ));
        }
        let (name, version) = split_pin(manager, spec)?;
        check_name(manager, name)?;
        if let Some(version) = version {
            check_version(manager, name, version)?;
        }
        Ok(Package {
            name: name.to_string(),
            version: version.map(str::to_string),
        })
    }
}

fn split_pin(manager: PackageManager, spec: &str) -> Result<(&str, Option<&str>), String> {
    let split = match manager {
        PackageManager::Apt | PackageManager::Apk | PackageManager::Dnf => {
            if spec.contains("==") {
                return Err(format!(
                    "`{spec}` uses `==`: {manager} pins use a single `=`, like `pkg=1.2`"
                ));
            }
            let split = spec.split_once('=');
            if split.is_none()
                && let Some(op) = ['~', '>', '<'].into_iter().find(|op| spec.contains(*op))
            {
                return Err(format!(
                    "`{spec}` uses `{op}`: ctforge supports exact pins only, like `pkg=1.2`"
                ));
            }
            split
        }
        PackageManager::Npm => {
            if spec.contains('=') && !spec.contains('@') {
                return Err(format!(
                    "`{spec}` uses `=`: npm pins use `@`, like `pkg@1.2`"
                ));
            }
            // `@scope/pkg@1.2`: the version `@` is the first one after the scope.
            let search_from = usize::from(spec.starts_with('@'));
            spec.get(search_from..)
                .and_then(|rest| rest.find('@'))
                .map(|at| at.saturating_add(search_from))
                .and_then(|at| Some((spec.get(..at)?, spec.get(at.saturating_add(1)..)?)))
        }
        PackageManager::Pip => {
            if spec.contains("===")
                || ["~=", "!=", ">", "<", ";"]
                    .iter()
                    .any(|op| spec.contains(op))
            {
                return Err(format!(
                    "`{spec}` is not an exact pin: ctforge supports `pkg==1.2` only for pip \
                     (no ranges or environment markers)"
                ));
            }
            match spec.split_once("==") {
                Some(pair) => Some(pair),
                None if spec.contains('=') => {
                    return Err(format!(
                        "`{spec}` uses a single `=`: pip pins use `==`, like `pkg==1.2`"
                    ));
                }
                None => None,
            }
        }
    };
    match split {
        Some((name, version)) => {
            if version.is_empty() {
                return Err(format!(
                    "empty version after `{}` in `{spec}`: write a version, like `{}`, or drop \
                     the `{}`",
                    manager.pin_separator(),
                    manager.pin_example(),
                    manager.pin_separator()
                ));
            }
            Ok((name, Some(version)))
        }
        None => Ok((spec, None)),
    }
}

fn check_name(manager: PackageManager, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "missing package name: write it before the version, like `{}`",
            manager.pin_example()
        ));
    }
    if name.len() > 214 {
        return Err("package name is longer than 214 characters: shorten it".to_string());
    }
    let ok = match manager {
        PackageManager::Apt => {
            if name.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(format!(
                    "apt package names are lowercase: write `{}`",
                    name.to_ascii_lowercase()
                ));
            }
            // name[:arch][/release]
            let (rest, release) = match name.split_once('/') {
                Some((rest, release)) => (rest, Some(release)),
                None => (name, None),
            };
            let (base, arch) = match rest.split_once(':') {
                Some((base, arch)) => (base, Some(arch)),
                None => (rest, None),
            };
            starts_and_continues(
                base,
                |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-'),
            ) && arch.is_none_or(|a| {
                !a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            }) && release.is_none_or(|r| {
                !r.is_empty()
                    && r.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '~')
                    })
            })
        }
        PackageManager::Apk => starts_and_continues(
            name,
            |c| c.is_ascii_alphanumeric(),
            |c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '_' | '-'),
        ),
        PackageManager::Dnf => {
            let base = name.strip_prefix('@').unwrap_or(name);
            starts_and_continues(
                base,
                |c| c.is_ascii_alphanumeric(),
                |c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '_' | '-'),
            )
        }
        PackageManager::Npm => {
            if name.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(format!(
                    "npm package names are lowercase: write `{}`",
                    name.to_ascii_lowercase()
                ));
            }
            let npm_part = |s: &str| {
                starts_and_continues(
                    s,
                    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '~'),
                    |c| {
                        c.is_ascii_lowercase()
                            || c.is_ascii_digit()
                            || matches!(c, '-' | '.' | '_' | '~')
                    },
                )
            };
            match name.strip_prefix('@') {
                Some(scoped) => match scoped.split_once('/') {
                    Some((scope, pkg)) => npm_part(scope) && npm_part(pkg),
                    None => {
                        return Err(format!(
                            "`{name}` is neither a package name nor a scoped `@scope/pkg`: \
                             write `pkg@1.2`, or `@scope/pkg@1.2` for a scoped package"
                        ));
                    }
                },
                None => npm_part(name),
            }
        }
        PackageManager::Pip => {
            let (base, extras) = match name.split_once('[') {
                Some((base, rest)) => match rest.strip_suffix(']') {
                    Some(extras) => (base, Some(extras)),
                    None => {
                        return Err(format!(
                            "unclosed `[` in `{name}`: write extras like `pkg[extra1,extra2]`"
                        ));
                    }
                },
                None => (name, None),
            };
            is_pip_name(base) && extras.is_none_or(|e| e.split(',').all(is_pip_name))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid {manager} package name: {}",
            name_rule(manager)
        ))
    }
}

fn name_rule(manager: PackageManager) -> &'static str {
    match manager {
        PackageManager::Apt => {
            "use lowercase letters, digits, `+`, `-` and `.`, starting with a letter or digit \
             (optionally `:arch` or `/release`)"
        }
        PackageManager::Apk => {
            "use letters, digits, `+`, `-`, `_` and `.`, starting with a letter or digit"
        }
        PackageManager::Dnf => {
            "use letters, digits, `+`, `-`, `_` and `.`, starting with a letter or digit (or \
             `@` for a group)"
        }
        PackageManager::Npm => {
            "use lowercase letters, digits, `-`, `.`, `_` and `~`, optionally scoped like \
             `@scope/pkg`"
        }
        PackageManager::Pip => {
            "use letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit \
             (optionally `[extras]`)"
        }
    }
}

fn is_pip_name(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.chars().next().is_some_and(alnum)
        && s.chars().last().is_some_and(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

fn starts_and_continues(
    s: &str,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(first) && chars.all(rest)
}

fn check_version(manager: PackageManager, name: &str, version: &str) -> Result<(), String> {
    let allowed = |c: char| match manager {
        PackageManager::Apt => {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | ':' | '-' | '*')
        }
        PackageManager::Apk => {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '_' | '-')
        }
        PackageManager::Dnf => {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | ':' | '_' | '-' | '^')
        }
        PackageManager::Npm => {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '.' | '+' | '~' | '^' | '-' | '*' | '<' | '>' | '=' | '|' | '_'
                )
        }
        PackageManager::Pip => {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '*' | '_' | '-')
        }
    };
    if version.chars().all(allowed) && version.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "`{version}` is not a valid {manager} version for `{name}`: write a version like \
             `{}`",
            manager.pin_example()
        ))
    }
}

/// Key used to find duplicate packages: pip names compare case-insensitively
/// with `-`, `_` and `.` treated alike (as pip does); npm and apt names are
/// already lowercase.
fn duplicate_key(manager: PackageManager, name: &str) -> String {
    match manager {
        PackageManager::Pip => name
            .split('[')
            .next()
            .unwrap_or(name)
            .chars()
            .map(|c| {
                if matches!(c, '_' | '.') {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// A named package list (a "bucket") for one manager: `packages/<bucket>.<manager>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageList {
    /// The bucket name: the file name without its extension.
    pub bucket: String,
    /// The manager, from the file extension.
    pub manager: PackageManager,
    /// The packages, in file order.
    pub packages: Vec<Package>,
    /// The original file text, re-emitted on write when the packages are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl PackageList {
    /// An empty list.
    pub fn new(bucket: impl Into<String>, manager: PackageManager) -> PackageList {
        PackageList {
            bucket: bucket.into(),
            manager,
            packages: Vec::new(),
            raw: None,
        }
    }

    /// The file name: `<bucket>.<manager>`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.bucket, self.manager.as_str())
    }

    /// The canonical text: one package per line in the manager's pin syntax.
    pub fn render_canonical(&self) -> String {
        let mut out = String::new();
        for package in &self.packages {
            out.push_str(&package.spec(self.manager));
            out.push('\n');
        }
        out
    }

    /// The file text: [`raw`](Self::raw) when it still parses to
    /// [`packages`](Self::packages), the canonical text otherwise.
    pub fn render(&self) -> String {
        if let Some(raw) = &self.raw
            && parse_package_list(raw, self.manager).0 == self.packages
        {
            return raw.clone();
        }
        self.render_canonical()
    }
}

/// Parses the text of a package list for `manager`. Never fails and never panics.
///
/// Diagnostics carry 1-based lines but an empty `file` (this function does not
/// know the file name); the directory loader sets it with [`Diagnostic::in_file`].
/// A line that cannot be parsed is reported as an error and skipped.
pub fn parse_package_list(text: &str, manager: PackageManager) -> (Vec<Package>, Vec<Diagnostic>) {
    let mut packages = Vec::new();
    let mut diags = Vec::new();
    let mut seen: HashMap<String, Option<u32>> = HashMap::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw_line) in text.split('\n').enumerate() {
        let line = line_no(index);
        let content = raw_line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let words = content.split_whitespace().count();
        let parsed = if words > 1 {
            if manager == PackageManager::Pip && content.contains(['<', '>', '=', '~', '!', ';']) {
                Err(format!(
                    "`{content}` is not an exact pin: ctforge supports `pkg==1.2` only for pip \
                     (no spaces, ranges or environment markers)"
                ))
            } else {
                Err(format!(
                    "{words} packages on one line: put each package on its own line, pinned \
                     like `{}`",
                    manager.pin_example()
                ))
            }
        } else {
            Package::parse(manager, content)
        };
        match parsed {
            Ok(package) => {
                let key = duplicate_key(manager, &package.name);
                if let Some(first) = seen.get(&key) {
                    let first = first.map(|l| l.to_string()).unwrap_or_default();
                    diags.push(Diagnostic {
                        file: Default::default(),
                        line,
                        severity: Severity::Warning,
                        message: format!(
                            "`{}` is listed twice (first on line {first}): remove one of the lines",
                            package.name
                        ),
                    });
                } else {
                    seen.insert(key, line);
                }
                packages.push(package);
            }
            Err(message) => diags.push(Diagnostic {
                file: Default::default(),
                line,
                severity: Severity::Error,
                message,
            }),
        }
    }
    (packages, diags)
}

#[cfg(test)]
mod custom_tests {
    use super::*;

    #[test]
    fn custom_lines_parse_with_optional_timeout() {
        let list = CustomList {
            bucket: "tools".into(),
            raw: "# tools\nfoundry|command -v forge|curl -L x -o /tmp/f|300\n\nbad line\nx|true|echo hi|soon\nnode | node -v | apt-get install -y nodejs\n".into(),
        };
        let (packages, problems) = list.parse();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "foundry");
        assert_eq!(packages[0].install, "curl -L x -o /tmp/f");
        assert_eq!(packages[0].timeout_secs, Some(300));
        assert_eq!(packages[1].timeout_secs, None);
        assert_eq!(problems.iter().map(|p| p.0).collect::<Vec<_>>(), vec![4, 5]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use PackageManager::*;

    #[test]
    fn pins_per_manager() {
        assert_eq!(
            Package::parse(Apt, "curl=7.88.1-10+deb12u5"),
            Ok(Package::pinned("curl", "7.88.1-10+deb12u5"))
        );
        assert_eq!(
            Package::parse(Apt, "libc6:amd64"),
            Ok(Package::new("libc6:amd64"))
        );
        assert_eq!(
            Package::parse(Npm, "@scope/pkg@1.2"),
            Ok(Package::pinned("@scope/pkg", "1.2"))
        );
        assert_eq!(
            Package::parse(Npm, "@scope/pkg"),
            Ok(Package::new("@scope/pkg"))
        );
        assert_eq!(
            Package::parse(Npm, "pm2@^5"),
            Ok(Package::pinned("pm2", "^5"))
        );
        assert_eq!(
            Package::parse(Pip, "requests[socks]==2.31.0"),
            Ok(Package::pinned("requests[socks]", "2.31.0"))
        );
        assert_eq!(
            Package::parse(Dnf, "@development-tools"),
            Ok(Package::new("@development-tools"))
        );
        assert!(Package::parse(Apt, "curl==1").is_err());
        assert!(Package::parse(Pip, "requests=1").is_err());
        assert!(Package::parse(Pip, "requests>=1").is_err());
        assert!(Package::parse(Npm, "Express").is_err());
        assert!(Package::parse(Npm, "@scope").is_err());
        assert!(Package::parse(Npm, "@").is_err());
        assert!(Package::parse(Npm, "pkg@").is_err());
        assert!(Package::parse(Apt, "=1").is_err());
        assert!(Package::parse(Apt, "").is_err());
    }

    #[test]
    fn display_uses_manager_syntax() {
        let p = Package::pinned("x", "1");
        assert_eq!(p.spec(Apt), "x=1");
        assert_eq!(p.spec(Npm), "x@1");
        assert_eq!(p.spec(Pip), "x==1");
        assert_eq!(Package::new("x").spec(Pip), "x");
    }

    #[test]
    fn manager_names() {
        for m in PackageManager::ALL {
            assert_eq!(PackageManager::from_extension(m.as_str()), Some(m));
            assert_eq!(m.to_string().parse::<PackageManager>(), Ok(m));
        }
        assert!("yum".parse::<PackageManager>().is_err());
    }

    #[test]
    fn list_with_comments() {
        let (p, d) = parse_package_list("# base\ncurl  # http\n\n git=1:2.39 \r\ncurl\n", Apt);
        assert_eq!(
            p,
            [
                Package::new("curl"),
                Package::pinned("git", "1:2.39"),
                Package::new("curl")
            ]
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, Some(5));
    }
}
