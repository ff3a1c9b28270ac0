//! `mutu portal` as the tests run it: on a free port of 127.0.0.1, trusting
//! 127.0.0.1 as it trusts the authenticating proxy in production.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::browser::free_port;

/// A running `mutu portal`, stopped on drop.
pub struct Portal {
    child: Child,
    /// Where it answers, e.g. `http://127.0.0.1:40123`.
    pub url: String,
}

impl Portal {
    /// Starts `$MUTU_BIN portal` and waits until it answers `/healthz`.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = std::env::var("MUTU_BIN")
            .map_err(|_| anyhow::anyhow!("MUTU_BIN is not set; run through `make test`"))?;
        let port = free_port()?;
        let child = Command::new(bin)
            .args([
                "portal",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--trusted-proxy",
                "127.0.0.1",
            ])
            // Its request log (one line a request) would drown the tests' output.
            .env("MUTU_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let portal = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let health = format!("{}/healthz", portal.url);
        mutu_runtime::testing::eventually(Duration::from_secs(20), "the portal to answer", || {
            let health = health.clone();
            async move {
                crate::scrape(&health)
                    .await
                    .ok()
                    .filter(|b| b.trim() == "ok")
            }
        })
        .await?;
        Ok(portal)
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
