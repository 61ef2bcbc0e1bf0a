//! The `ctforge` binary as a user runs it: serve answers, bad configuration fails with one
//! clear line and no panic.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ctforge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctforge"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CTFORGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn assert_one_line_error(output: &std::process::Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "exactly one error line: {stderr}");
    assert!(lines[0].contains(needle), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn serve_answers_healthz_and_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let mut child = ctforge()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ok = false;
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            ok = response.starts_with("HTTP/1.1 200");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "healthz answered 200");
    assert!(dir.path().join("ctforge.db").exists());
}

#[test]
fn bad_configuration_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "listen = [\n").unwrap();
    let out = ctforge()
        .args(["config", "show", "--config"])
        .arg(&bad_toml)
        .output()
        .unwrap();
    assert_one_line_error(&out, "not valid TOML");

    let out = ctforge()
        .args(["config", "show"])
        .env("CTFORGE_DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert_one_line_error(&out, "CTFORGE_DATABASE_URL");

    let out = ctforge()
        .args(["config", "show"])
        .env("CTFORGE_SECRET_KEY_FILE", "/nonexistent/key")
        .output()
        .unwrap();
    assert_one_line_error(&out, "cannot read");

    let out = ctforge()
        .args(["serve", "--listen", "localhost"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_one_line_error(&out, "--listen");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = ctforge()
        .args(["serve", "--listen", &addr])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_one_line_error(&out, "in use");

    let out = ctforge()
        .args(["migrate"])
        .env("CTFORGE_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_one_line_error(&out, "cannot open database");
}

#[test]
fn config_show_redacts_and_unknown_env_warns() {
    let out = ctforge()
        .args(["config", "show"])
        .env(
            "CTFORGE_SECRET_KEY",
            "dG9wc2VjcmV0dG9wc2VjcmV0dG9wc2VjcmV0dG9wc2U=",
        )
        .env("CTFORGE_DATABASE_URL", "postgres://u:hunter2@db/ctforge")
        .env("CTFORGE_LISTN", "oops")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("dG9wc2Vj"),
        "{stdout}"
    );
    assert!(stdout.contains("<redacted>"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CTFORGE_LISTN"));
}

#[test]
fn migrate_on_empty_postgres_then_readyz() {
    let admin = std::env::var("CTFORGE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("ctforge_cli_{}", std::process::id());
    let status = Command::new("psql")
        .arg(&admin)
        .args([
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {name}"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        panic!("psql must be able to reach PostgreSQL at {admin}");
    }
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let out = ctforge()
        .arg("migrate")
        .env("CTFORGE_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = ctforge()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("CTFORGE_DATABASE_URL", &url)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut ready = false;
    while started.elapsed() < Duration::from_secs(10) && !ready {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            ready = response.starts_with("HTTP/1.1 200");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "readyz 200 on a migrated PostgreSQL database");
}
