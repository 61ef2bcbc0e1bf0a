//! Traces name commands and timings but never passwords or pushed content.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{channel, run, sim};
use ctforge_ssh::{PushMode, RemoteExec};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn traces_have_commands_but_no_secrets() {
    let buf = Buf::default();
    let b2 = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || b2.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(sub);

    let h = sim().await;
    let password = h.root_password.clone();
    for mode in [PushMode::PctStdin, PushMode::ExecCat] {
        let ch = channel(&h, 100, mode).await;
        let (code, _) = run(&ch, "echo traced-command-marker").await;
        assert_eq!(code, 0);
        ch.push(
            b"TOP-SECRET-CONTENT-42\n",
            "/etc/secret.env",
            Some(0o600),
            None,
        )
        .await
        .unwrap();
    }
    h.shutdown().await;

    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    assert!(text.contains("traced-command-marker"), "{text}");
    assert!(
        text.contains("pct push") && text.contains("elapsed_ms"),
        "{text}"
    );
    assert!(!text.contains("TOP-SECRET-CONTENT-42"), "content leaked");
    assert!(!text.contains(&password), "password leaked");
}
