//! rrddata generation with PVE 9 resolutions (`hour` 60 s × 60, `day` 60 s × 1440,
//! `week` 30 min × 336, `month` 30 min × 1440, `year` 6 h × 1440), time aligned
//! to the step, the last bucket ending before now, and field omission: points
//! where the CT was stopped carry only `maxcpu maxmem maxdisk disk`, points
//! before the CT existed only `time`; a trailing time-only bucket is dropped.

use serde_json::{Map, Value, json};

use crate::state::{Ct, GIB, MIB, frac};

/// (step seconds, number of points) of a timeframe.
pub fn resolution(timeframe: &str) -> Option<(u64, u64)> {
    match timeframe {
        "hour" => Some((60, 60)),
        "day" => Some((60, 1440)),
        "week" => Some((1800, 336)),
        "month" => Some((1800, 1440)),
        "year" => Some((21600, 1440)),
        _ => None,
    }
}

fn times(now: u64, step: u64, count: u64) -> impl Iterator<Item = u64> {
    let last = (now / step) * step - step;
    let first = last.saturating_sub((count - 1) * step);
    (0..count).map(move |i| first + i * step)
}

/// rrddata points of a CT.
pub fn ct_points(ct: &Ct, maxcpu: f64, now: u64, timeframe: &str, max: bool) -> Vec<Value> {
    let Some((step, count)) = resolution(timeframe) else {
        return Vec::new();
    };
    let v = u64::from(ct.vmid);
    let maxmem = (ct.memory_mib() * MIB) as f64;
    let maxdisk = ct.rootfs_bytes() as f64;
    let boost = if max { 1.35 } else { 1.0 };
    let mut out: Vec<Value> = times(now, step, count)
        .map(|t| {
            let mut m = Map::new();
            m.insert("time".into(), json!(t));
            if t + step <= ct.created_at {
                return Value::Object(m);
            }
            m.insert("maxcpu".into(), json!(maxcpu));
            m.insert("maxmem".into(), json!(maxmem));
            m.insert("maxdisk".into(), json!(maxdisk));
            // Running at any moment of the bucket counts as running.
            let running = ct.running_at(t) || ct.running_at(t + step - 1);
            if !running {
                m.insert("disk".into(), json!(0.0));
                return Value::Object(m);
            }
            let k = t / step;
            let f = frac(v, k);
            m.insert("disk".into(), json!(maxdisk * (0.1 + 0.4 * frac(v, 3))));
            m.insert("cpu".into(), json!((0.01 + 0.12 * f) * boost));
            m.insert(
                "mem".into(),
                json!(maxmem * (0.1 + 0.25 * frac(v, k + 1)) * boost),
            );
            m.insert(
                "netin".into(),
                json!((200.0 + 4000.0 * frac(v, k + 2)) * boost),
            );
            m.insert(
                "netout".into(),
                json!((100.0 + 2500.0 * frac(v, k + 3)) * boost),
            );
            m.insert(
                "diskread".into(),
                json!((1024.0 + 40960.0 * frac(v, k + 4)) * boost),
            );
            m.insert(
                "diskwrite".into(),
                json!((2048.0 + 81920.0 * frac(v, k + 5)) * boost),
            );
            for (i, key) in [
                "pressurecpusome",
                "pressurecpufull",
                "pressureiosome",
                "pressureiofull",
                "pressurememorysome",
                "pressurememoryfull",
            ]
            .iter()
            .enumerate()
            {
                m.insert(
                    (*key).into(),
                    json!(0.3 * frac(v, k + 10 + i as u64) * boost),
                );
            }
            Value::Object(m)
        })
        .collect();
    while out
        .last()
        .map(|p| p.as_object().map(|o| o.len() == 1).unwrap_or(false))
        .unwrap_or(false)
    {
        out.pop();
    }
    out
}

/// rrddata points of a node.
pub fn node_points(
    seed: u64,
    maxcpu: u32,
    maxmem: u64,
    maxdisk: u64,
    now: u64,
    timeframe: &str,
    max: bool,
) -> Vec<Value> {
    let Some((step, count)) = resolution(timeframe) else {
        return Vec::new();
    };
    let boost = if max { 1.3 } else { 1.0 };
    times(now, step, count)
        .map(|t| {
            let k = t / step;
            let f = frac(seed, k);
            let used = maxmem as f64 * (0.25 + 0.2 * frac(seed, k + 1)) * boost;
            json!({
                "time": t,
                "cpu": (0.03 + 0.2 * f) * boost,
                "maxcpu": maxcpu,
                "iowait": 0.002 * frac(seed, k + 2) * boost,
                "loadavg": (0.2 + 1.5 * f) * boost,
                "memtotal": maxmem as f64,
                "memused": used,
                "memavailable": maxmem as f64 - used,
                "swaptotal": (8 * GIB) as f64,
                "swapused": 0.0,
                "roottotal": maxdisk as f64,
                "rootused": maxdisk as f64 * 0.2,
                "netin": (5000.0 + 50000.0 * frac(seed, k + 3)) * boost,
                "netout": (3000.0 + 30000.0 * frac(seed, k + 4)) * boost,
                "pressurecpusome": 0.5 * frac(seed, k + 5) * boost,
                "pressureiosome": 0.2 * frac(seed, k + 6) * boost,
                "pressurememorysome": 0.0,
            })
        })
        .collect()
}
