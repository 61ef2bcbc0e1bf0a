//! `/nodes/{node}/storage`, storage content, `aplinfo` and `download-url`.

use serde_json::{Value, json};

use super::{Ctx, Reply};
use crate::error::ApiError;
use crate::state::{Cluster, Volume, parse_size, template_format};
use crate::tasks::{TaskCtx, spawn_task, step};

fn visible(ctx: &Ctx<'_>, c: &Cluster, storage: &str) -> bool {
    let Ok(ident) = ctx.ident() else {
        return false;
    };
    let path = format!("/storage/{storage}");
    c.has_priv(ident, &path, "Datastore.Audit")
        || c.has_priv(ident, &path, "Datastore.AllocateSpace")
}

/// `GET /nodes/{node}/storage`.
pub fn index(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let content = ctx
        .params
        .str("content")
        .map(|c| crate::validate::split_list(&c));
    let only = ctx.params.str("storage");
    let c = ctx.state.lock();
    let mut out = Vec::new();
    for s in &c.storages {
        if let Some(want) = &content
            && !want.iter().any(|w| s.supports(w))
        {
            continue;
        }
        if only.as_deref().map(|o| o != s.id).unwrap_or(false) || !visible(ctx, &c, &s.id) {
            continue;
        }
        let used = c.storage_used(&node, s);
        let mut cont = s.content.clone();
        cont.sort();
        let mut v = json!({
            "storage": s.id, "type": s.kind, "content": cont.join(","), "active": 1, "enabled": 1,
            "shared": if s.shared { 1 } else { 0 }, "total": s.total, "used": used,
            "avail": s.total.saturating_sub(used), "used_fraction": used as f64 / s.total.max(1) as f64,
        });
        if ctx.params.flag("format", false)
            && let Some(m) = v.as_object_mut()
        {
            let (def, sup) = match s.kind.as_str() {
                "dir" | "nfs" | "cifs" => ("raw", json!(["raw", "qcow2", "vmdk", "subvol"])),
                "zfspool" => ("raw", json!(["raw", "subvol"])),
                _ => ("raw", json!(["raw"])),
            };
            m.insert("formats".into(), json!({"default": def, "supported": sup}));
        }
        out.push(v);
    }
    Ok(Reply::data(Value::Array(out)))
}

/// `GET /nodes/{node}/storage/{storage}/content`.
pub fn content(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let sid = ctx.p("storage")?;
    let want = ctx.params.str("content");
    let vmid = ctx.params.int("vmid");
    // Snippets are files in the storage's `snippets/` directory on the node (uploaded over
    // SFTP, since the upload API takes only iso, vztmpl and import content).
    let snippets: Vec<(String, u64)> = ctx
        .state
        .node_dir_list(&node, &format!("{}/snippets", storage_path(&sid)))
        .into_iter()
        .filter(|(_, _, dir)| !dir)
        .map(|(name, size, _)| (name, size))
        .collect();
    let c = ctx.state.lock();
    let Some(s) = c.storage(&sid) else {
        return Err(ApiError::internal(format!(
            "storage '{sid}' does not exist"
        )));
    };
    let mut out = Vec::new();
    if s.supports("snippets") && want.as_deref().is_none_or(|w| w == "snippets") && vmid.is_none() {
        for (name, size) in &snippets {
            out.push(json!({
                "volid": format!("{sid}:snippets/{name}"), "format": "snippet", "size": size,
                "ctime": c.boot_time, "content": "snippets",
            }));
        }
    }
    for v in c
        .volumes
        .iter()
        .filter(|v| v.storage == sid && v.node.as_deref().map(|n| n == node).unwrap_or(true))
    {
        if want.as_deref().map(|w| w != v.content).unwrap_or(false) || vmid.is_some() {
            continue;
        }
        out.push(json!({"volid": v.volid, "format": v.format, "size": v.size, "ctime": v.ctime, "content": v.content}));
    }
    if want
        .as_deref()
        .map(|w| w == "rootdir" || w == "images")
        .unwrap_or(true)
    {
        for ct in c.cts.values().filter(|ct| ct.node == node || s.shared) {
            if vmid.map(|v| v != i64::from(ct.vmid)).unwrap_or(false) {
                continue;
            }
            for (k, val) in ct
                .conf
                .iter()
                .filter(|(k, _)| *k == "rootfs" || k.starts_with("mp") || k.starts_with("unused"))
            {
                let volid = val.split(',').next().unwrap_or("");
                if !volid.starts_with(&format!("{sid}:")) {
                    continue;
                }
                let size = val
                    .split(',')
                    .find_map(|p| p.strip_prefix("size="))
                    .and_then(parse_size)
                    .unwrap_or(0);
                let format = if s.kind == "zfspool" { "subvol" } else { "raw" };
                let _ = k;
                out.push(json!({"volid": volid, "format": format, "size": size, "used": size / 3, "vmid": ct.vmid, "content": "rootdir", "ctime": ct.created_at}));
            }
        }
        for vm in c.vms.values().filter(|vm| vm.node == node || s.shared) {
            if vmid.map(|v| v != i64::from(vm.vmid)).unwrap_or(false) {
                continue;
            }
            for (k, val) in vm
                .conf
                .iter()
                .filter(|(k, _)| crate::state::is_vm_disk_key(k) || k.starts_with("unused"))
            {
                let volid = val.split(',').next().unwrap_or("");
                if !volid.starts_with(&format!("{sid}:")) {
                    continue;
                }
                let size = val
                    .split(',')
                    .find_map(|p| p.strip_prefix("size="))
                    .and_then(parse_size)
                    .unwrap_or(0);
                let format = match volid.rsplit('.').next() {
                    Some("qcow2") => "qcow2",
                    Some("vmdk") => "vmdk",
                    _ => "raw",
                };
                let _ = k;
                out.push(json!({"volid": volid, "format": format, "size": size, "used": size / 4, "vmid": vm.vmid, "content": "images", "ctime": vm.created_at}));
            }
        }
    }
    Ok(Reply::data(Value::Array(out)))
}

/// `GET /nodes/{node}/aplinfo`.
pub fn aplinfo(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let c = ctx.state.lock();
    let list: Vec<Value> = c
        .appliances
        .iter()
        .map(|a| {
            let section_dir = if a.section == "turnkeylinux" { "turnkeylinux" } else { "system" };
            json!({
                "template": a.template, "package": a.package, "version": a.version, "type": "lxc",
                "os": a.os, "section": a.section, "headline": a.headline,
                "description": format!("{} (simulated appliance index entry)", a.headline),
                "maintainer": "Proxmox Support Team <support@proxmox.com>", "architecture": "amd64",
                "location": format!("http://download.proxmox.com/images/{section_dir}/{}", a.template),
                "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
                "source": format!("http://download.proxmox.com/images/{section_dir}/{}", a.template),
                "sha512sum": format!("{:0>128}", format!("{:x}", a.size)),
            })
        })
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

async fn download_task(
    ctx: TaskCtx,
    node: String,
    storage: String,
    file: String,
    url: String,
    size: u64,
) -> Result<u32, String> {
    let total = ctx.with(|c| c.timings.download);
    let d = step(total, 4);
    ctx.log(format!("starting template download from: {url}"));
    ctx.log(format!("target file: /var/lib/vz/template/cache/{file}"));
    for pct in [25, 50, 75, 100] {
        ctx.sleep(d).await;
        ctx.log(format!(
            "{:>6}KiB ({pct}%) downloaded",
            size / 1024 * pct / 100
        ));
    }
    ctx.log(format!(
        "download of '{url}' to '/var/lib/vz/template/cache/{file}' finished"
    ));
    ctx.with(|c| {
        let volid = format!("{storage}:vztmpl/{file}");
        let now = c.now();
        if !c
            .volumes
            .iter()
            .any(|v| v.volid == volid && v.node.as_deref().map(|n| n == node).unwrap_or(true))
        {
            c.volumes.push(Volume {
                node: Some(node.clone()),
                storage: storage.clone(),
                volid,
                content: "vztmpl".into(),
                format: template_format(&file),
                size,
                ctime: now,
            });
        }
    });
    Ok(0)
}

/// `POST /nodes/{node}/aplinfo`: download an appliance template (task `download`).
pub fn apl_download(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let sid = ctx.p("storage")?;
    let template = ctx.p("template")?;
    let ident = ctx.ident()?.clone();
    let mut c = ctx.state.lock();
    ctx.check(&c, &format!("/storage/{sid}"), "Datastore.AllocateTemplate")?;
    let Some(app) = c
        .appliances
        .iter()
        .find(|a| a.template == template)
        .cloned()
    else {
        return Err(ApiError::param("template", "no such template"));
    };
    let Some(s) = c.storage(&sid) else {
        return Err(ApiError::internal(format!(
            "storage '{sid}' does not exist"
        )));
    };
    if !s.supports("vztmpl") {
        return Err(ApiError::internal(format!(
            "storage '{sid}' does not support templates"
        )));
    }
    let section_dir = if app.section == "turnkeylinux" {
        "turnkeylinux"
    } else {
        "system"
    };
    let url = format!("http://download.proxmox.com/images/{section_dir}/{template}");
    let (n, s2, f) = (node.clone(), sid.clone(), template.clone());
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "download",
        &template,
        &ident,
        move |t| download_task(t, n, s2, f, url, app.size),
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST /nodes/{node}/storage/{storage}/download-url`.
pub fn download_url(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let sid = ctx.p("storage")?;
    let filename = ctx.p("filename")?;
    let url = ctx.p("url")?;
    let content = ctx.p("content")?;
    let ident = ctx.ident()?.clone();
    let mut c = ctx.state.lock();
    ctx.check(&c, &format!("/storage/{sid}"), "Datastore.AllocateTemplate")?;
    let Some(s) = c.storage(&sid) else {
        return Err(ApiError::internal(format!(
            "storage '{sid}' does not exist"
        )));
    };
    if !s.supports(&content) {
        return Err(ApiError::internal(format!(
            "storage '{sid}' is not configured for content-type '{content}'"
        )));
    }
    let (n, s2, f) = (node.clone(), sid.clone(), filename.clone());
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "download",
        &filename,
        &ident,
        move |t| async move {
            let r =
                download_task(t.clone(), n.clone(), s2.clone(), f.clone(), url, 50_000_000).await;
            if content != "vztmpl" {
                t.with(|c| {
                    if let Some(v) = c
                        .volumes
                        .iter_mut()
                        .rev()
                        .find(|v| v.volid == format!("{s2}:vztmpl/{f}"))
                    {
                        v.volid = format!("{s2}:{content}/{f}");
                        v.content = content.clone();
                        v.format = content.clone();
                    }
                });
            }
            r
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// The directory a storage keeps its files in on a node (`local` is `/var/lib/vz`, other
/// directory storages are mounted at `/mnt/pve/<id>`).
pub fn storage_path(sid: &str) -> String {
    if sid == "local" {
        "/var/lib/vz".to_string()
    } else {
        format!("/mnt/pve/{sid}")
    }
}
