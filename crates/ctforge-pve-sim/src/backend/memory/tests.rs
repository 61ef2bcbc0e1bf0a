//! Unit tests of the shell emulator and the guest store.

use super::*;

fn guest() -> (MemoryBackend, u32) {
    let b = MemoryBackend::new();
    b.create(
        100,
        &CreateSpec {
            conf: Default::default(),
            hostname: "t".into(),
            ostemplate: "local:vztmpl/x.tar.zst".into(),
            password: None,
            ssh_public_keys: None,
            ..CreateSpec::default()
        },
    )
    .expect("create");
    b.start(100).expect("start");
    (b, 100)
}

fn sh(b: &MemoryBackend, script: &str) -> (String, String, u32) {
    let (o, e, c) = b.run(100, &["bash".into(), "-c".into(), script.into()], b"");
    (
        String::from_utf8_lossy(&o).into(),
        String::from_utf8_lossy(&e).into(),
        c,
    )
}

#[test]
fn install_adds_service_and_ss_shows_it() {
    let (b, _) = guest();
    let (_, _, c) = sh(&b, "apt-get update && apt-get install -y nginx");
    assert_eq!(c, 0);
    let (o, _, _) = sh(&b, "ss -tlnp");
    assert!(o.contains("0.0.0.0:80"), "{o}");
    assert!(o.contains("\"nginx\""), "{o}");
    let (o, _, c) = sh(&b, "systemctl is-active nginx");
    assert_eq!((o.as_str(), c), ("active\n", 0));
}

#[test]
fn apt_option_values_are_not_packages() {
    let (b, _) = guest();
    let (_, e, c) = sh(
        &b,
        "apt-get install -y -q -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300 nginx",
    );
    assert_eq!(c, 0, "{e}");
    let (o, _, c) = sh(&b, "dpkg -s nginx");
    assert!(c == 0 && o.contains("install ok installed"), "{o}");
    let (_, _, c) = sh(&b, "dpkg -s Acquire::Retries=3");
    assert_eq!(c, 1, "an option's value is not installed as a package");
}

#[test]
fn files_heredoc_and_errexit() {
    let (b, _) = guest();
    let (_, _, c) = sh(
        &b,
        "mkdir -p /opt/app/conf\ncat > /opt/app/conf/a.txt <<'EOF'\nhello $X\nworld\nEOF\ncp /opt/app/conf/a.txt /tmp/",
    );
    assert_eq!(c, 0);
    assert_eq!(
        b.file(100, "/tmp/a.txt").as_deref(),
        Some(&b"hello $X\nworld\n"[..])
    );
    let (_, e, c) = sh(&b, "set -e; cat /nope; echo never");
    assert_eq!(c, 1);
    assert!(e.contains("No such file"));
    let (o, _, c) = sh(&b, "test -e /tmp/a.txt && echo yes || echo no");
    assert_eq!((o.as_str(), c), ("yes\n", 0));
    let (o, _, _) = sh(&b, "[ -d /nope ] || echo missing");
    assert_eq!(o, "missing\n");
}

#[test]
fn systemctl_show_batch_and_custom_unit() {
    let (b, _) = guest();
    b.write_file(
        100,
        "/etc/systemd/system/myapp.service",
        b"[Unit]\nDescription=My App\n[Service]\nExecStart=/usr/local/bin/myapp --port 8080\n",
    );
    let (_, _, c) = sh(
        &b,
        "systemctl daemon-reload && systemctl enable --now myapp",
    );
    assert_eq!(c, 0);
    let (o, _, _) = sh(
        &b,
        "systemctl show -p Id,ActiveState,UnitFileState myapp.service nope.service",
    );
    assert_eq!(
        o,
        "Id=myapp.service\nActiveState=active\nUnitFileState=enabled\n\nId=nope.service\nActiveState=inactive\nUnitFileState=\n"
    );
    let (o, _, _) = sh(&b, "ss -tlnp | grep 8080");
    assert!(o.contains("myapp"), "{o}");
    let (_, e, c) = sh(&b, "apt-get install -y no-such-pkg");
    assert_eq!(c, 100);
    assert!(e.contains("Unable to locate package no-such-pkg"));
}

#[test]
fn status_tar_and_missing_commands() {
    let (b, _) = guest();
    let (o, _, _) = sh(&b, "false\necho \"rc $?\" 'lit $?'\ntrue; echo \"rc=$?\"");
    assert_eq!(o, "rc 1 lit $?\nrc=0\n");
    b.write_file(100, "/etc/ctforge/credentials/admin", b"s3cret\n");
    b.write_file(100, "/etc/ctforge/credentials/@@x", b"a\nb");
    let (o, e, c) = sh(&b, "tar -C /etc/ctforge/credentials -cf - . | base64");
    assert_eq!(c, 0, "{e}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(o.trim())
        .expect("base64");
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut found = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).expect("read");
        found.push((path, text));
    }
    assert_eq!(
        found,
        [
            ("./".to_string(), String::new()),
            ("@@x".to_string(), "a\nb".to_string()),
            ("admin".to_string(), "s3cret\n".to_string())
        ]
    );
    let (_, e, c) = sh(&b, "tar -C /nope -cf - .");
    assert_eq!(c, 2);
    assert!(e.contains("Cannot open"), "{e}");
    assert!(b.set_missing_commands(100, &["ss".to_string()]));
    let (o, e, _) = sh(&b, "ss -tlnp 2>&1\necho \"rc $?\"");
    assert_eq!(
        (o.as_str(), e.as_str()),
        ("sh: 1: ss: not found\nrc 127\n", "")
    );
    assert!(b.set_missing_commands(100, &[]));
    let (o, _, _) = sh(&b, "ss -tlnp");
    assert!(o.contains("sshd"), "{o}");
}

#[tokio::test]
async fn never_ending_commands_block_until_their_timeout_kills_them() {
    let (b, vmid) = guest();
    b.write_file(
        vmid,
        "/etc/systemd/system/stuck.service",
        b"[Service]\nExecStartPre=/bin/sleep infinity\nExecStart=/bin/true\n",
    );
    let (_, _, c) = sh(
        &b,
        "systemctl enable stuck && systemctl start --no-block stuck",
    );
    assert_eq!(c, 0);
    assert_eq!(sh(&b, "systemctl is-active stuck").0, "activating\n");
    assert_eq!(
        sh(&b, "systemctl list-jobs --no-legend").0,
        "100 stuck.service start running\n"
    );
    assert_eq!(
        sh(&b, "systemctl is-system-running").0,
        "running\n",
        "booted"
    );
    b.stop(vmid).unwrap();
    b.start(vmid).unwrap();
    assert_eq!(sh(&b, "systemctl is-system-running").0, "starting\n");

    let argv = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let run = b.exec(
        vmid,
        argv("timeout -k 5 1 systemctl is-system-running --wait"),
        Vec::new(),
        tx,
    );
    assert_eq!(
        sh(&b, "pgrep -f is-system-running").2,
        0,
        "running while it waits"
    );
    assert_eq!(run.await, 124, "killed by timeout");
    assert_eq!(sh(&b, "pgrep -f is-system-running").2, 1, "and gone");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let forever = b.exec(vmid, argv("sleep infinity"), Vec::new(), tx);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(100), forever)
            .await
            .is_err(),
        "without timeout it never ends"
    );
}

#[test]
fn stdin_detection() {
    let b = MemoryBackend::new();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(b.needs_stdin(&v(&["bash", "-c", "cat > /etc/x"])));
    assert!(!b.needs_stdin(&v(&["bash", "-c", "cat /etc/x"])));
    assert!(!b.needs_stdin(&v(&["systemctl", "status", "x"])));
    assert!(b.needs_stdin(&v(&["bash", "-s"])));
    assert!(!b.needs_stdin(&v(&["bash", "/root/x.sh"])));
}

#[test]
fn seq_counts_like_coreutils() {
    let (b, _) = guest();
    assert_eq!(sh(&b, "seq 3"), ("1\n2\n3\n".into(), String::new(), 0));
    assert_eq!(sh(&b, "seq 2 2 6").0, "2\n4\n6\n");
    assert_eq!(sh(&b, "seq 3 -1 1").0, "3\n2\n1\n");
    let (o, _, c) = sh(&b, "seq 1000000");
    assert_eq!((o.lines().count(), c), (1_000_000, 0));
    assert!(o.ends_with("999999\n1000000\n"));
    let (_, e, c) = sh(&b, "seq x");
    assert_eq!(c, 1);
    assert!(
        e.starts_with("seq: invalid floating point argument: ‘x’"),
        "{e}"
    );
    let (_, e, c) = sh(&b, "seq");
    assert_eq!((e.lines().next(), c), (Some("seq: missing operand"), 1));
}

/// Runs `script` as ctforge runs a template's script: stored in the guest, then
/// `mkdir -p CRED && … CTFORGE_CREDENTIALS_DIR=CRED … sh FILE`.
fn run_stored(b: &MemoryBackend, script: &str) -> (String, String, u32) {
    b.with_guest(100, |g| {
        g.data.dirs.insert("/var/lib/ctforge".into());
        g.data.dirs.insert("/var/lib/ctforge/scripts".into());
        g.data.files.insert(
            "/var/lib/ctforge/scripts/10-x.sh".into(),
            GFile {
                data: script.as_bytes().to_vec(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        );
    });
    sh(
        b,
        "mkdir -p /etc/ctforge/credentials && chmod 700 /etc/ctforge/credentials && \
         CTFORGE_CREDENTIALS_DIR=/etc/ctforge/credentials CTFORGE_HOSTNAME=db sh /var/lib/ctforge/scripts/10-x.sh",
    )
}

#[test]
fn variables_expand_like_sh() {
    let (b, _) = guest();
    let (o, _, c) = sh(
        &b,
        "A=one; B=\"two words\"; echo $A \"$B\" ${A} ${NOPE:-dflt} \"${A:-x}/y\" '$A' $HOME",
    );
    assert_eq!(
        (o.as_str(), c),
        ("one two words one dflt one/y $A /root\n", 0)
    );
    let (o, _, _) = sh(&b, "echo hi > /tmp/f; X=\"$(cat /tmp/f)\"; echo \"[$X]\"");
    assert_eq!(o, "[hi]\n");
    // A child shell sees exported variables only, plus its own environment.
    let (o, _, _) = sh(
        &b,
        "A=1; export B=2; C=3 sh -c 'echo \"[$A][$B][$C]\"'; echo \"[$C]\"",
    );
    assert_eq!(o, "[][2][3]\n[]\n");
}

#[test]
fn if_blocks_and_errexit_follow_posix_sh() {
    let (b, _) = guest();
    let (o, _, c) = sh(
        &b,
        "set -e\nif [ -f /nope ]; then\n  echo yes\nelif false; then echo no\nelse\n  echo else\nfi\necho after",
    );
    assert_eq!((o.as_str(), c), ("else\nafter\n", 0));
    // `set -e` ignores a failure followed by `||` or `&&`.
    let (o, _, c) = sh(
        &b,
        "set -e\nfalse || echo rescued\nfalse && echo never\necho end",
    );
    assert_eq!((o.as_str(), c), ("rescued\nend\n", 0));
    let (o, _, c) = sh(
        &b,
        "set -e\nif true; then false; echo never; fi\necho never",
    );
    assert_eq!((o.as_str(), c), ("", 1));
    let (_, e, c) = sh(&b, "if true; then echo x");
    assert_eq!(c, 2, "{e}");
    // A child shell's `exit` and `set -e` end only the child.
    let (o, _, c) = sh(&b, "sh -c 'set -e; false; echo never'; echo status $?");
    assert_eq!((o.as_str(), c), ("status 1\n", 0));
}

#[test]
fn random_bytes_tr_and_su() {
    let (b, _) = guest();
    let (o, _, c) = sh(&b, "head -c 18 /dev/urandom | base64 | tr -d '/+='");
    assert_eq!(c, 0);
    assert!(
        o.trim().len() >= 20 && o.trim().chars().all(|c| c.is_ascii_alphanumeric()),
        "{o}"
    );
    let (o, _, _) = sh(&b, "echo hello | tr a-z A-Z");
    assert_eq!(o, "HELLO\n");
    let (o, _, c) = sh(&b, "su postgres -c \"echo 'as postgres'\"");
    assert_eq!((o.as_str(), c), ("as postgres\n", 0));
}

/// The shipped `postgres-db` example's script runs as on Debian 12 and leaves its password in
/// the credentials directory; a second run (a retry) keeps it.
#[test]
fn postgres_example_script_runs() {
    let (b, _) = guest();
    let (_, e, c) = sh(&b, "apt-get update && apt-get install -y postgresql");
    assert_eq!(c, 0, "{e}");
    let script = include_str!(
        "../../../../../examples/templates/postgres-db/container-configs/scripts/10-database.sh"
    );
    let (o, e, c) = run_stored(&b, script);
    assert_eq!(c, 0, "stdout: {o}\nstderr: {e}");
    let pw = b
        .file(100, "/etc/ctforge/credentials/postgres-app-password")
        .expect("password file");
    let pw = String::from_utf8_lossy(&pw).trim().to_string();
    assert!(pw.len() >= 20, "{pw:?}");
    let (_, e, c) = run_stored(&b, script);
    assert_eq!(c, 0, "{e}");
    let again = b
        .file(100, "/etc/ctforge/credentials/postgres-app-password")
        .map(|p| String::from_utf8_lossy(&p).trim().to_string());
    assert_eq!(again.as_deref(), Some(pw.as_str()));
    let (o, _, _) = sh(&b, "systemctl is-active postgresql");
    assert_eq!(o, "active\n");
}

fn run(b: &MemoryBackend, argv: &[&str]) -> (String, String, u32) {
    let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    let (o, e, c) = b.run(100, &argv, b"");
    (
        String::from_utf8_lossy(&o).into(),
        String::from_utf8_lossy(&e).into(),
        c,
    )
}

#[test]
fn sh_is_dash_and_rejects_bash_only_syntax() {
    let (b, _) = guest();
    let script = "echo before\nset -euo pipefail\necho after\n";
    let (o, e, c) = run(&b, &["sh", "-c", script]);
    assert_eq!(
        (o.as_str(), e.as_str(), c),
        ("before\n", "sh: 2: set: Illegal option -o pipefail\n", 2)
    );
    let (o, e, c) = run(&b, &["bash", "-c", script]);
    assert_eq!((o.as_str(), e.as_str(), c), ("before\nafter\n", "", 0));

    // A script file: dash names it in the message.
    let (_, _, c) = sh(
        &b,
        "mkdir -p /opt && printf 'set -e\\nA=(x y)\\necho no\\n' > /opt/a.sh",
    );
    assert_eq!(c, 0);
    let (o, e, c) = run(&b, &["sh", "/opt/a.sh"]);
    assert_eq!(
        (o.as_str(), e.as_str(), c),
        ("", "/opt/a.sh: 2: Syntax error: \"(\" unexpected\n", 2)
    );

    // `[[` is a command dash does not have: not found, fatal under set -e.
    let (o, e, c) = run(&b, &["sh", "-c", "[[ -d /tmp ]]\necho went on"]);
    assert_eq!(
        (o.as_str(), e.as_str(), c),
        ("went on\n", "sh: 1: [[: not found\n", 0)
    );
    let (_, e, c) = run(&b, &["sh", "-c", "set -e\n[[ -d /tmp ]]\necho no"]);
    assert_eq!((e.as_str(), c), ("sh: 2: [[: not found\n", 127));
    let (_, e, c) = run(&b, &["dash", "-c", "set -o pipefail"]);
    assert_eq!(
        (e.as_str(), c),
        ("dash: 1: set: Illegal option -o pipefail\n", 2)
    );
}

#[test]
fn bash_env_helpers_behave_like_the_runtime() {
    let (b, _) = guest();
    let (_, _, c) = sh(
        &b,
        "mkdir -p /usr/local/lib/ctforge && printf 'log_info() {\\n:\\n}\\nlog_warn() {\\n:\\n}\\nsave_credential() {\\n:\\n}\\nis_installed() {\\n:\\n}\\n' > /usr/local/lib/ctforge/rt.sh && printf 'log_info hello world\\nlog_warn low memory\\nsave_credential CODE_SERVER_PASSWORD s3cret\\nis_installed nope || echo missing\\n' > /root/s.sh",
    );
    assert_eq!(c, 0);
    let (o, e, c) = sh(&b, "BASH_ENV=/usr/local/lib/ctforge/rt.sh bash /root/s.sh");
    assert_eq!(c, 0, "{e}");
    let lines: Vec<&str> = o.lines().collect();
    assert!(lines[0].ends_with("] [INFO   ] hello world"), "{o}");
    assert!(lines[1].ends_with("] [WARNING] low memory"), "{o}");
    assert_eq!(lines[2], "missing");
    let (o, _, _) = sh(&b, "cat /etc/infrahaus/credentials");
    assert_eq!(o, "CODE_SERVER_PASSWORD=s3cret\n");
    // Without BASH_ENV the names are unknown commands, as in a shell without the runtime.
    let (o, _, _) = run(&b, &["bash", "-c", "log_info x"]);
    assert_eq!(o, "");
}

#[test]
fn accounts_follow_useradd_like_debian() {
    let (b, _) = guest();
    let (_, e, c) = sh(&b, "id alice");
    assert_eq!((e.as_str(), c), ("id: 'alice': no such user\n", 1));
    let (_, e, c) = sh(
        &b,
        "useradd --create-home --shell /bin/bash --groups sudo alice",
    );
    assert_eq!(c, 0, "{e}");
    let (o, _, c) = sh(
        &b,
        "id -u alice; getent passwd alice; test -d /home/alice && echo home",
    );
    assert_eq!(
        (o.as_str(), c),
        ("1000\nalice:x:1000:1000::/home/alice:/bin/bash\nhome\n", 0)
    );
    let (_, e, c) = sh(&b, "useradd alice");
    assert_eq!(
        (e.as_str(), c),
        ("useradd: user 'alice' already exists\n", 9)
    );
    let (_, _, c) = sh(&b, "getent passwd nobody-here");
    assert_eq!(c, 2);
    let (o, e, c) = sh(
        &b,
        "install -d -m 0700 -o alice -g alice /home/alice/.vnc && echo x > /home/alice/.vnc/passwd && cat /home/alice/.vnc/passwd",
    );
    assert_eq!((o.as_str(), c), ("x\n", 0), "{e}");
}

#[test]
fn detect_container_user_finds_the_login_account() {
    let (b, _) = guest();
    let (_, _, c) = sh(
        &b,
        "mkdir -p /usr/local/lib/ctforge && printf 'detect_container_user() {\\n:\\n}\\n' > /usr/local/lib/ctforge/rt.sh && printf 'detect_container_user\\necho \"user=$CONTAINER_USER\"\\n' > /root/s.sh",
    );
    assert_eq!(c, 0);
    let (o, e, _) = sh(&b, "BASH_ENV=/usr/local/lib/ctforge/rt.sh bash /root/s.sh");
    assert_eq!(o, "user=coder\n", "{e}");
    let (_, _, c) = sh(&b, "useradd -m -s /bin/bash desk");
    assert_eq!(c, 0);
    let (o, e, _) = sh(&b, "BASH_ENV=/usr/local/lib/ctforge/rt.sh bash /root/s.sh");
    assert_eq!(o, "user=desk\n", "{e}");
}
