//! The simulator's own Proxmox API as root's token, for tests that set a scene the way an admin
//! would in Proxmox (VMs created and started outside ctforge) and read Proxmox's answer back.

use std::time::{Duration, Instant};

use ctforge_pve_sim::SimHandle;
use serde_json::Value;

/// The simulator's API as root's token (what an admin's script would do in Proxmox).
pub struct Pve<'a> {
    sim: &'a SimHandle,
    http: reqwest::Client,
}

impl<'a> Pve<'a> {
    pub fn new(sim: &'a SimHandle) -> Self {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        Self { sim, http }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .request(method, format!("{}/api2/json{path}", self.sim.base_url))
            .header(
                "authorization",
                format!(
                    "PVEAPIToken={}={}",
                    self.sim.token_id, self.sim.token_secret
                ),
            )
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body["data"].clone()
    }

    pub async fn wait(&self, node: &str, upid: &Value) {
        let upid = upid.as_str().unwrap();
        let path = format!(
            "/nodes/{node}/tasks/{}/status",
            url::form_urlencoded::byte_serialize(upid.as_bytes()).collect::<String>()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.call(reqwest::Method::GET, &path, &[]).await;
            if s["status"] == "stopped" {
                assert_eq!(s["exitstatus"], "OK", "{s}");
                return;
            }
            assert!(Instant::now() < deadline, "task {upid} did not end");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST` of a task on `node` (`path` under `/nodes/{node}`), waited for until it ends OK.
    async fn task(&self, node: &str, path: &str, form: &[(&str, &str)]) {
        let upid = self
            .call(reqwest::Method::POST, &format!("/nodes/{node}{path}"), form)
            .await;
        self.wait(node, &upid).await;
    }

    /// Creates VM `vmid` on `node` (no disk, no agent), started when `running`.
    pub async fn create_vm(&self, vmid: u32, node: &str, name: &str, running: bool) {
        let vmid_s = vmid.to_string();
        let form = [
            ("vmid", vmid_s.as_str()),
            ("name", name),
            ("memory", "512"),
            ("cores", "1"),
        ];
        self.task(node, "/qemu", &form).await;
        if running {
            self.task(node, &format!("/qemu/{vmid}/status/start"), &[])
                .await;
        }
    }

    /// Makes VM template `vmid` on `node` as an admin would: a VM with the node's Debian 12
    /// cloud image imported on thin LVM (so clones of it can be linked), a cloud-init drive
    /// and the agent, converted to a template.
    pub async fn create_vm_template(&self, vmid: u32, node: &str, name: &str) {
        let vmid_s = vmid.to_string();
        let form = [
            ("vmid", vmid_s.as_str()),
            ("name", name),
            ("memory", "1024"),
            ("scsihw", "virtio-scsi-single"),
            (
                "scsi0",
                "local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2",
            ),
            ("ide2", "local-lvm:cloudinit"),
            ("agent", "enabled=1"),
            ("serial0", "socket"),
            ("net0", "virtio,bridge=vmbr0"),
        ];
        self.task(node, "/qemu", &form).await;
        self.task(node, &format!("/qemu/{vmid}/template"), &[])
            .await;
    }

    /// `running`, `stopped`, or `None` when Proxmox has no such VM.
    pub async fn vm_status(&self, node: &str, vmid: u32) -> Option<String> {
        let r = self
            .http
            .get(format!(
                "{}/api2/json/nodes/{node}/qemu/{vmid}/status/current",
                self.sim.base_url
            ))
            .header(
                "authorization",
                format!(
                    "PVEAPIToken={}={}",
                    self.sim.token_id, self.sim.token_secret
                ),
            )
            .send()
            .await
            .unwrap();
        if !r.status().is_success() {
            return None;
        }
        let body: Value = r.json().await.unwrap();
        body["data"]["status"].as_str().map(str::to_owned)
    }
}
