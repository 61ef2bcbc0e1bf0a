//! `ctforge-bench`: the performance harness. It runs the *built* `ctforge` binary the way it is
//! deployed — `ctforge sim` (memory backend, instant tasks), `ctforge serve`, and for the
//! scale-out profile PostgreSQL + Redis with a separate `ctforge worker` process — drives it
//! over HTTP and prints one table of the figures of the performance floor, with the commit.
//!
//! Figures: creation request → job finished (median, p99), dashboard views/s at concurrency 8
//! with the simulator's count of `/cluster/resources` calls, a single dashboard view with
//! 5,000 CTs, discovery of 2,000 templates (time, peak RSS of the process), template list and
//! detail pages on SQLite and PostgreSQL. See `crates/ctforge-bench/README.md`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Command-line options.
#[derive(Parser, Debug, Clone)]
#[command(about = "Performance figures of ctforge against its simulator, as one table")]
struct Opts {
    /// The ctforge binary (build it with `cargo build --release --bin ctforge`).
    #[arg(long, default_value = "target/release/ctforge")]
    bin: PathBuf,
    /// Creations measured per profile.
    #[arg(long, default_value_t = 100)]
    jobs: usize,
    /// Seconds of the dashboard throughput run.
    #[arg(long, default_value_t = 15)]
    dashboard_secs: u64,
    /// Concurrent dashboard viewers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Templates for the discovery figure.
    #[arg(long, default_value_t = 2000)]
    templates: usize,
    /// PostgreSQL server (a database is created per run); `none` skips the PostgreSQL rows.
    #[arg(
        long,
        env = "CTFORGE_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg: String,
    /// Redis for the scale-out profile.
    #[arg(
        long,
        env = "CTFORGE_TEST_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: String,
    /// Work directory (default: a new directory under the system's temp dir, removed after).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Which figures: `floor` (the performance floor), `images` (ten containers from scratch
    /// vs from the template's image on the simulator's lxc backend; needs root and
    /// `scripts/setup-lxc.sh`) or `all`; or a comma list of the floor's parts while working on
    /// one: `creation`, `dashboard`, `discovery`, `pages`.
    #[arg(long, default_value = "floor")]
    figures: String,
    /// Containers per column of the images figure.
    #[arg(long, default_value_t = 10)]
    image_containers: usize,
    /// Creations of the images figure in flight at once (each column).
    #[arg(long, default_value_t = 2)]
    image_parallel: usize,
    /// Writes every creation of the images figure as a timeline (each job log line with its
    /// milliseconds since the request) to this file.
    #[arg(long)]
    timelines: Option<PathBuf>,
    /// A quick run (about a minute): at most 30 creations per profile, 5 s of dashboard load,
    /// 500 templates discovered and 100 views per template page. Noisier, and not the floor's
    /// sizes: report figures of a run with the defaults.
    #[arg(long)]
    quick: bool,
    /// Sequential views per template page figure.
    #[arg(long, default_value_t = 300)]
    page_views: usize,
}

impl Opts {
    /// The sizes of the run: `--quick` caps them.
    fn sized(mut self) -> Self {
        if self.quick {
            self.jobs = self.jobs.min(30);
            self.dashboard_secs = self.dashboard_secs.min(5);
            self.templates = self.templates.min(500);
            self.page_views = self.page_views.min(100);
        }
        self
    }
}

/// A child process killed when dropped.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A running simulator.
struct Sim {
    _proc: Proc,
    base: String,
    password: String,
    cluster_toml: PathBuf,
    http: reqwest::Client,
    ticket: String,
    csrf: String,
}

const SIM_PASSWORD: &str = "Bench-Secret-123";

async fn start_sim(opts: &Opts, dir: &Path, nodes: u32, containers: u32) -> Result<Sim> {
    start_sim_on(opts, dir, nodes, containers, "memory").await
}

async fn start_sim_on(
    opts: &Opts,
    dir: &Path,
    nodes: u32,
    containers: u32,
    backend: &str,
) -> Result<Sim> {
    let port = free_port()?;
    let ssh = free_port()?;
    let state = dir.join("sim");
    std::fs::create_dir_all(&state)?;
    let log = std::fs::File::create(dir.join("sim.log"))?;
    let child = Command::new(&opts.bin)
        .args(["sim", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--ssh-listen", &format!("127.0.0.1:{ssh}")])
        .args(["--backend", backend, "--nodes", &nodes.to_string()])
        .args(["--containers", &containers.to_string(), "--task-speed", "0"])
        .args(["--auth-delay-ms", "0", "--root-password", SIM_PASSWORD])
        .arg("--state-dir")
        .arg(&state)
        .env("CTFORGE_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot run {}", opts.bin.display()))?;
    let proc = Proc { child };
    let base = format!("https://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    let cluster_toml = state.join("cluster.toml");
    let deadline = Instant::now() + Duration::from_secs(120);
    let (ticket, csrf) = loop {
        if Instant::now() > deadline {
            bail!(
                "the simulator did not start (see {}/sim.log)",
                dir.display()
            );
        }
        if cluster_toml.exists()
            && let Ok(r) = http
                .post(format!("{base}/api2/json/access/ticket"))
                .form(&[("username", "root@pam"), ("password", SIM_PASSWORD)])
                .send()
                .await
            && r.status().is_success()
        {
            let body: Value = r.json().await?;
            if let Some(t) = body["data"]["ticket"].as_str() {
                let csrf = body["data"]["CSRFPreventionToken"]
                    .as_str()
                    .unwrap_or_default();
                break (t.to_owned(), csrf.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(Sim {
        _proc: proc,
        base,
        password: SIM_PASSWORD.to_owned(),
        cluster_toml,
        http,
        ticket,
        csrf,
    })
}

impl Sim {
    /// API requests the simulator received, by `METHOD /path`.
    async fn calls(&self) -> Result<Value> {
        let r = self
            .http
            .get(format!("{}/sim/admin/calls", self.base))
            .header("cookie", format!("PVEAuthCookie={}", self.ticket))
            .send()
            .await?;
        let body: Value = r.json().await?;
        Ok(body["data"].clone())
    }

    /// Proxmox API requests received so far: `/cluster/resources`, and every other one (the
    /// simulator's own `/sim/admin` routes are not Proxmox's and not counted).
    async fn proxmox_calls(&self) -> Result<Calls> {
        let calls = self.calls().await?;
        let mut out = Calls::default();
        for (key, n) in calls.as_object().into_iter().flatten() {
            let n = n.as_u64().unwrap_or(0);
            if key == "GET /cluster/resources" {
                out.resources += n;
            } else if !key.contains("/sim/admin") {
                if key.ends_with("/pending") {
                    out.pending += n;
                }
                out.other += n;
            }
        }
        Ok(out)
    }
}

/// Proxmox API requests counted by the simulator.
#[derive(Default, Clone, Copy, Debug)]
struct Calls {
    /// `GET /cluster/resources`.
    resources: u64,
    /// Every other request (`pending` among them).
    other: u64,
    /// `GET …/lxc/{vmid}/pending`.
    pending: u64,
}

impl std::ops::Sub for Calls {
    type Output = Calls;
    fn sub(self, before: Calls) -> Calls {
        Calls {
            resources: self.resources.saturating_sub(before.resources),
            other: self.other.saturating_sub(before.other),
            pending: self.pending.saturating_sub(before.pending),
        }
    }
}

/// Where the application keeps its data.
#[derive(Clone)]
enum Db {
    Sqlite,
    /// PostgreSQL database URL, with Redis (sessions, locks, the bus, wake-ups) if given; with
    /// Redis a separate `ctforge worker` process runs the jobs.
    Postgres {
        url: String,
        redis: Option<String>,
    },
}

impl Db {
    fn env(&self, data: &Path) -> Vec<(String, String)> {
        let mut env = vec![
            ("CTFORGE_DATA_DIR".to_owned(), data.display().to_string()),
            ("CTFORGE_LOG_LEVEL".to_owned(), "warn".to_owned()),
        ];
        if let Db::Postgres { url, redis } = self {
            env.push(("CTFORGE_DATABASE_URL".to_owned(), url.clone()));
            if let Some(redis) = redis {
                env.push(("CTFORGE_REDIS_URL".to_owned(), redis.clone()));
                env.push((
                    "CTFORGE_REDIS_PREFIX".to_owned(),
                    format!("bench-{}:", data_key(data)),
                ));
            }
        }
        env
    }

    fn label(&self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres { redis: Some(_), .. } => "PostgreSQL + Redis, separate worker",
            Db::Postgres { redis: None, .. } => "PostgreSQL",
        }
    }
}

async fn fresh_pg(admin: &str) -> Result<String> {
    use sqlx::Executor;
    let name = format!("ctforge_bench_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(admin)
        .await
        .with_context(|| format!("PostgreSQL at {admin}"))?;
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or_else(|| admin.to_owned());
    Ok(format!("{base}/{name}"))
}

/// A running application (serve, and a worker process for PostgreSQL).
struct App {
    _procs: Vec<Proc>,
    base: String,
    client: reqwest::Client,
    csrf: String,
    db: Db,
    data: PathBuf,
}

async fn start_app(opts: &Opts, dir: &Path, sim: &Sim, db: Db) -> Result<App> {
    start_app_with(opts, dir, sim, db, &[]).await
}

async fn start_app_with(
    opts: &Opts,
    dir: &Path,
    sim: &Sim,
    db: Db,
    extra_env: &[(&str, &str)],
) -> Result<App> {
    let data = dir.join(format!("data-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data)?;
    let port = free_port()?;
    let mut env = db.env(&data);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let separate = matches!(db, Db::Postgres { redis: Some(_), .. });
    let spawn = |args: &[&str], log: &str, workers: Option<&str>| -> Result<Proc> {
        let mut cmd = Command::new(&opts.bin);
        cmd.args(args)
            .arg("--config")
            .arg(&sim.cluster_toml)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log))?);
        if let Some(n) = workers {
            cmd.env("CTFORGE_WORKERS__CONCURRENCY", n);
        }
        Ok(Proc {
            child: cmd.spawn()?,
        })
    };
    let mut procs = vec![spawn(
        &["serve", "--listen", &format!("127.0.0.1:{port}")],
        "serve.log",
        separate.then_some("0"),
    )?];
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().cookie_store(true).build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        if Instant::now() > deadline {
            bail!("serve did not start (see {}/serve.log)", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if separate {
        procs.push(spawn(&["worker"], "worker.log", None)?);
    }
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": "root", "password": sim.password, "realm": "pam" }))
        .send()
        .await?
        .json()
        .await?;
    let csrf = login["csrf_token"]
        .as_str()
        .ok_or_else(|| anyhow!("sign-in failed: {login}"))?
        .to_owned();
    Ok(App {
        _procs: procs,
        base,
        client,
        csrf,
        db,
        data,
    })
}

impl App {
    /// `ctforge templates discover --root ROOT` into this application's database; returns the
    /// wall time and the process's peak RSS in KiB.
    fn discover(&self, opts: &Opts, root: &Path) -> Result<(Duration, u64)> {
        discover_into(opts, &self.db, &self.data, root)
    }
}

fn discover_into(opts: &Opts, db: &Db, data: &Path, root: &Path) -> Result<(Duration, u64)> {
    let started = Instant::now();
    let mut child = Command::new(&opts.bin)
        .args(["templates", "discover", "--root"])
        .arg(root)
        .envs(db.env(data))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    // VmHWM only grows: the last reading before exit is (within one poll) the peak.
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("discovery of {} failed ({status})", root.display());
    }
    Ok((elapsed, peak_kib))
}

/// Where one creation's time went, in ms from the request: the answer (202), and from the
/// job's record the wait in the queue (created → started) and its steps (started → finished);
/// the rest is the event stream's delivery of `done`.
#[derive(Clone, Copy, Debug, Default)]
struct Timing {
    total: f64,
    answer: f64,
    queued: f64,
    steps: f64,
}

/// One creation with instant tasks: request → job finished, with where the time went.
async fn create_once(app: &App, template: &str, hostname: &str) -> Result<Timing> {
    let created = create_job(app, json!({ "template": template, "hostname": hostname })).await?;
    let (job, mut timing) = (
        created.job,
        Timing {
            total: created.ms,
            answer: created.answer,
            ..Timing::default()
        },
    );
    let j = job_record(app, job).await?;
    let ms = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
    timing.queued = ms("started_at") - ms("created_at");
    timing.steps = ms("finished_at") - ms("started_at");
    Ok(timing)
}

/// A followed creation: milliseconds from the request to its job's end and to the answer, the
/// job, and the request's wall-clock time (Unix ms, the time base of the job's events).
struct Created {
    ms: f64,
    answer: f64,
    job: i64,
    requested_at: i64,
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Submits the creation `body` and follows its job to the end.
async fn create_job(app: &App, body: Value) -> Result<Created> {
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;
    let requested_at = unix_ms();
    let started = Instant::now();
    let r = app
        .client
        .post(format!("{}/api/v1/containers", app.base))
        .header("x-csrf-token", &app.csrf)
        .json(&body)
        .send()
        .await?;
    if r.status().as_u16() != 202 {
        bail!("creation refused: {} {}", r.status(), r.text().await?);
    }
    let body: Value = r.json().await?;
    let answer = ms(started);
    let job = body["job_id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no job id: {body}"))?;
    let r = app
        .client
        .get(format!("{}/api/v1/jobs/{job}/events", app.base))
        .header("accept", "text/event-stream")
        .send()
        .await?;
    let mut stream = r.bytes_stream();
    let mut seen = String::new();
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk?));
        if seen.contains("\"kind\":\"done\"") {
            return Ok(Created {
                ms: ms(started),
                answer,
                job,
                requested_at,
            });
        }
        if seen.contains("\"kind\":\"error\"") || seen.contains("\"kind\":\"cancelled\"") {
            let tail: String = seen
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bail!("job {job} failed: …{tail}");
        }
        // Keep the tail only (a marker may straddle two chunks).
        if seen.len() > 8192 {
            let cut = seen.len() - 4096;
            let cut = (cut..seen.len())
                .find(|i| seen.is_char_boundary(*i))
                .unwrap_or(0);
            seen.drain(..cut);
        }
    }
    bail!("job {job}: the event stream ended before the job did")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn small_template(root: &Path) -> Result<()> {
    let dir = root.join("bench-web");
    std::fs::create_dir_all(dir.join("container-configs/packages"))?;
    std::fs::write(
        dir.join("template.conf"),
        "TEMPLATE_APP=\"Bench Web\"\nTEMPLATE_OS=\"debian\"\nTEMPLATE_VERSION=\"12\"\n",
    )?;
    std::fs::write(
        dir.join("container-configs/packages/web.apt"),
        "nginx-light\n",
    )?;
    Ok(())
}

/// Copies `from` to `to` recursively.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// `n` copies of the example `nginx-web` template (the repository's), each its own name.
fn many_templates(root: &Path, n: usize) -> Result<()> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/templates/nginx-web");
    for i in 0..n {
        copy_dir(&example, &root.join(format!("web-{i:05}")))?;
    }
    Ok(())
}

/// One row of the table.
struct Row {
    figure: String,
    value: String,
    floor: String,
    ok: Option<bool>,
}

fn row(figure: impl Into<String>, value: impl Into<String>, floor: &str, ok: Option<bool>) -> Row {
    Row {
        figure: figure.into(),
        value: value.into(),
        floor: floor.to_owned(),
        ok,
    }
}

async fn creation(opts: &Opts, dir: &Path, db: Db, rows: &mut Vec<Row>) -> Result<()> {
    let label = db.label();
    let sim = start_sim(opts, dir, 3, 0).await?;
    let app = start_app(opts, dir, &sim, db).await?;
    let root = dir.join(format!("small-{}", uuid::Uuid::new_v4().simple()));
    small_template(&root)?;
    app.discover(opts, &root)?;
    let mut timings = Vec::with_capacity(opts.jobs);
    for i in 0..opts.jobs {
        timings.push(create_once(&app, "bench-web", &format!("bench{i}")).await?);
    }
    let median_of = |f: fn(&Timing) -> f64| {
        let mut v: Vec<f64> = timings.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0)
    };
    let (answer, queued, steps) = (
        median_of(|t| t.answer),
        median_of(|t| t.queued),
        median_of(|t| t.steps),
    );
    let mut times: Vec<f64> = timings.iter().map(|t| t.total).collect();
    times.sort_by(f64::total_cmp);
    let (median, p99) = (percentile(&times, 50.0), percentile(&times, 99.0));
    rows.push(row(
        format!(
            "creation request→finished, {} jobs, instant tasks ({label}): median",
            opts.jobs
        ),
        format!("{median:.1} ms"),
        "≤ 40 ms",
        Some(median <= 40.0),
    ));
    rows.push(row(
        format!("creation request→finished ({label}): p99"),
        format!("{p99:.1} ms"),
        "≤ 100 ms",
        Some(p99 <= 100.0),
    ));
    rows.push(row(
        format!("  where it went ({label}), medians: answer · queued · steps"),
        format!("{answer:.1} · {queued:.1} · {steps:.1} ms"),
        "",
        None,
    ));
    Ok(())
}

/// Ten containers (`--image-containers`) of one web template on the lxc backend, two at a time
/// (`--image-parallel`):
/// first from scratch, then from the template's image (baked in between, not counted); per
/// container time from the request to Ready (median, max) and the wall time of each batch.
async fn images(opts: &Opts, dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let sim = start_sim_on(opts, dir, 1, 0, "lxc").await?;
    let n = opts.image_containers.to_string();
    let app = start_app_with(
        opts,
        dir,
        &sim,
        Db::Sqlite,
        &[
            ("CTFORGE_IMAGES__AUTO_BUILD", "false"),
            ("CTFORGE_WORKERS__CONCURRENCY", n.as_str()),
            ("CTFORGE_WORKERS__PER_NODE", n.as_str()),
        ],
    )
    .await?;
    let root = dir.join(format!("images-{}", uuid::Uuid::new_v4().simple()));
    small_template(&root)?;
    app.discover(opts, &root)?;
    let result = async {
        let scratch = batch(&app, "scratch", opts).await?;
        let r = app
            .client
            .post(format!("{}/api/v1/images", app.base))
            .header("x-csrf-token", &app.csrf)
            .json(&json!({ "template": "bench-web" }))
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("image build refused: {} {}", r.status(), r.text().await?);
        }
        let started: Value = r.json().await?;
        let baked = Instant::now();
        follow_job(&app, started["job_id"].as_i64().unwrap_or_default()).await?;
        let bake = baked.elapsed().as_secs_f64();
        let image = batch(&app, "image", opts).await?;
        Ok((scratch, image, bake))
    }
    .await;
    cleanup_lxc(&sim).await;
    let (scratch, image, bake) = result?;
    let (k, p) = (opts.image_containers, opts.image_parallel);
    if let Some(path) = &opts.timelines {
        let mut text = String::new();
        for (label, b) in [("scratch", &scratch), ("image", &image)] {
            for t in &b.timelines {
                text.push_str(&t.render(label));
            }
        }
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
        eprintln!("timelines written to {}", path.display());
    }
    // Where the time of the median creation from the image went, line by line.
    if let Some(median) = image.median_timeline() {
        eprint!("{}", median.render("image, the median creation"));
    }
    for (label, b) in [("from scratch", &scratch), ("from its image", &image)] {
        let (times, total) = (&b.times, b.total);
        let median = percentile(times, 50.0) / 1000.0;
        let max = times.last().copied().unwrap_or(f64::NAN) / 1000.0;
        let goal = label == "from its image";
        rows.push(row(
            format!("{k} web containers ({p} at a time), lxc, {label}: median to Ready"),
            format!("{median:.1} s"),
            if goal { "≤ 3 s" } else { "" },
            goal.then_some(median <= 3.0),
        ));
        rows.push(row(
            format!("{k} web containers ({p} at a time), lxc, {label}: max / total"),
            format!("{max:.1} s / {total:.1} s"),
            "",
            None,
        ));
        rows.push(row(
            format!("{label}: median of each phase"),
            b.phase_medians(),
            "",
            None,
        ));
    }
    rows.push(row(
        "image bake of the web template (once, not counted above)",
        format!("{bake:.1} s"),
        "",
        None,
    ));
    Ok(())
}

/// One column of the images figure: each creation's time to Ready in milliseconds (sorted),
/// the batch's wall time in seconds, and each creation's timeline.
struct Batch {
    times: Vec<f64>,
    total: f64,
    timelines: Vec<Timeline>,
}

impl Batch {
    /// The creation whose time is the median.
    fn median_timeline(&self) -> Option<&Timeline> {
        let mut sorted: Vec<&Timeline> = self.timelines.iter().collect();
        sorted.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        sorted.get(sorted.len().checked_sub(1)? / 2).copied()
    }

    /// Each phase's median in seconds, in the job's order: waiting for a worker, the job's
    /// steps, and the rest (checkpoints between steps, the end reaching the client).
    fn phase_medians(&self) -> String {
        let mut names: Vec<String> = vec!["queued".to_owned()];
        for t in &self.timelines {
            for (name, _) in &t.phases {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names.push("other".to_owned());
        names
            .iter()
            .map(|name| {
                let mut values: Vec<f64> = self
                    .timelines
                    .iter()
                    .map(|t| match name.as_str() {
                        "queued" => t.queued,
                        "other" => t.other(),
                        _ => t
                            .phases
                            .iter()
                            .filter(|(n, _)| n == name)
                            .map(|(_, ms)| ms)
                            .sum(),
                    })
                    .collect();
                values.sort_by(f64::total_cmp);
                format!("{name} {:.2}", percentile(&values, 50.0) / 1000.0)
            })
            .collect::<Vec<_>>()
            .join(" · ")
            + " s"
    }
}

/// Where one creation's time went, from its job's events (their `at`, Unix ms).
struct Timeline {
    job: i64,
    /// Request → Ready.
    ms: f64,
    /// Request → a worker claimed the job.
    queued: f64,
    /// Each step's time (its `step` event to its `complete`), in order.
    phases: Vec<(String, f64)>,
    /// Every log line: milliseconds since the request, step, text.
    lines: Vec<(i64, String, String)>,
}

impl Timeline {
    /// Time outside the worker's steps after the claim.
    fn other(&self) -> f64 {
        self.ms - self.queued - self.phases.iter().map(|(_, ms)| ms).sum::<f64>()
    }

    fn render(&self, label: &str) -> String {
        let mut text = format!(
            "== {label}: job {} ready in {:.0} ms (queued {:.0} ms; {})\n",
            self.job,
            self.ms,
            self.queued,
            self.phases
                .iter()
                .map(|(n, ms)| format!("{n} {ms:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut last = 0;
        for (at, step, line) in &self.lines {
            text.push_str(&format!("{at:>7} ms (+{:>5}) [{step}] {line}\n", at - last));
            last = *at;
        }
        text
    }
}

/// The timeline of the followed creation `created`, from its job's events.
async fn timeline(app: &App, created: &Created) -> Result<Timeline> {
    const PAGE: usize = 1000;
    let mut events: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = app
            .client
            .get(format!(
                "{}/api/v1/jobs/{}/events?after={after}&limit={PAGE}",
                app.base, created.job
            ))
            .send()
            .await?
            .json()
            .await?;
        let got = page["events"].as_array().cloned().unwrap_or_default();
        let n = got.len();
        if let Some(seq) = got.last().and_then(|e| e["seq"].as_i64()) {
            after = seq;
        }
        events.extend(got);
        if n < PAGE {
            break;
        }
    }
    let at = |e: &Value| e["at"].as_i64().unwrap_or(0) - created.requested_at;
    let mut t = Timeline {
        job: created.job,
        ms: created.ms,
        queued: 0.0,
        phases: Vec::new(),
        lines: Vec::new(),
    };
    let mut open: Option<(String, i64)> = None;
    for e in &events {
        let step = e["step"].as_str().unwrap_or("").to_owned();
        match e["kind"].as_str() {
            Some("start") => t.queued = at(e) as f64,
            Some("step") => open = Some((step, at(e))),
            Some("complete") => {
                if let Some((name, started)) = open.take() {
                    t.phases.push((name, (at(e) - started) as f64));
                }
            }
            Some("log") => t
                .lines
                .push((at(e), step, e["data"].as_str().unwrap_or("").to_owned())),
            _ => {}
        }
    }
    Ok(t)
}

/// `--image-containers` creations of `bench-web` with `"source": source`, `--image-parallel`
/// in flight at once (automatic VMIDs: simultaneous requests reserve different ones).
async fn batch(app: &App, source: &str, opts: &Opts) -> Result<Batch> {
    let started = Instant::now();
    let runs = (0..opts.image_containers).map(|i| async move {
        let created = create_job(
            app,
            json!({
                "template": "bench-web",
                "hostname": format!("{source}{i}"),
                "source": source,
            }),
        )
        .await?;
        timeline(app, &created).await
    });
    let timelines: Vec<Timeline> = futures_util::stream::iter(runs)
        .buffer_unordered(opts.image_parallel.max(1))
        .collect::<Vec<Result<Timeline>>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let total = started.elapsed().as_secs_f64();
    let mut times: Vec<f64> = timelines.iter().map(|t| t.ms).collect();
    times.sort_by(f64::total_cmp);
    Ok(Batch {
        times,
        total,
        timelines,
    })
}

/// `GET /api/v1/jobs/{job}`.
async fn job_record(app: &App, job: i64) -> Result<Value> {
    Ok(app
        .client
        .get(format!("{}/api/v1/jobs/{job}", app.base))
        .send()
        .await?
        .json()
        .await?)
}

/// Follows job `job` until it ends; an error unless it succeeded.
async fn follow_job(app: &App, job: i64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let j = job_record(app, job).await?;
        match j["state"].as_str() {
            Some("succeeded") => return Ok(()),
            Some("failed" | "cancelled") => bail!("job {job} ended {}: {j}", j["state"]),
            _ if Instant::now() > deadline => bail!("job {job} did not finish"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Stops and destroys every CT of the lxc simulator (real containers outlive its process).
async fn cleanup_lxc(sim: &Sim) {
    let Ok(r) = sim
        .http
        .get(format!("{}/api2/json/cluster/resources?type=vm", sim.base))
        .header("cookie", format!("PVEAuthCookie={}", sim.ticket))
        .send()
        .await
    else {
        return;
    };
    let Ok(body) = r.json::<Value>().await else {
        return;
    };
    let guests: Vec<(String, u64)> = body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| Some((g["node"].as_str()?.to_owned(), g["vmid"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    for (node, vmid) in guests {
        let ct = format!("{}/api2/json/nodes/{node}/lxc/{vmid}", sim.base);
        let _ = sim
            .http
            .post(format!("{ct}/status/stop"))
            .header("cookie", format!("PVEAuthCookie={}", sim.ticket))
            .header("CSRFPreventionToken", &sim.csrf)
            .send()
            .await;
        for _ in 0..120 {
            let gone = sim
                .http
                .delete(format!("{ct}?force=1&purge=1"))
                .header("cookie", format!("PVEAuthCookie={}", sim.ticket))
                .header("CSRFPreventionToken", &sim.csrf)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Destruction runs as a task: wait until the simulator lists none (a minute at most).
    for _ in 0..60 {
        let left = sim
            .http
            .get(format!("{}/api2/json/cluster/resources?type=vm", sim.base))
            .header("cookie", format!("PVEAuthCookie={}", sim.ticket))
            .send()
            .await
            .ok();
        let empty = match left {
            Some(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|b| b["data"].as_array().map(Vec::is_empty))
                .unwrap_or(true),
            None => true,
        };
        if empty {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn dashboard(opts: &Opts, dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let sim = start_sim(opts, dir, 8, 1000).await?;
    let app = start_app(opts, dir, &sim, Db::Sqlite).await?;
    let url = format!("{}/", app.base);
    // Warm up (connections, the first read).
    for _ in 0..5 {
        app.client.get(&url).send().await?.bytes().await?;
    }
    let before = sim.proxmox_calls().await?;
    let window = Duration::from_secs(opts.dashboard_secs);
    let started = Instant::now();
    let viewers = (0..opts.concurrency).map(|_| {
        let client = app.client.clone();
        let url = url.clone();
        async move {
            let mut n = 0u64;
            while started.elapsed() < window {
                if let Ok(r) = client.get(&url).send().await
                    && r.status().is_success()
                    && r.bytes().await.is_ok()
                {
                    n += 1;
                }
            }
            n
        }
    });
    let views: u64 = futures_util::future::join_all(viewers)
        .await
        .into_iter()
        .sum();
    let elapsed = started.elapsed().as_secs_f64();
    let calls = sim.proxmox_calls().await? - before;
    let per_s = views as f64 / elapsed;
    // The default freshness window is 2 s.
    let windows = (elapsed / 2.0).ceil();
    rows.push(row(
        format!(
            "dashboard views/s, 1,000 CTs on 8 nodes, concurrency {}, {} s",
            opts.concurrency, opts.dashboard_secs
        ),
        format!("{per_s:.0} views/s ({views} views)"),
        "≥ 1,000/s",
        Some(per_s >= 1000.0),
    ));
    rows.push(row(
        "  Proxmox /cluster/resources calls received by the simulator",
        format!(
            "{} in {elapsed:.1} s ({:.2} per 2 s window)",
            calls.resources,
            calls.resources as f64 / windows
        ),
        "≤ 1 per window",
        Some(calls.resources as f64 <= windows + 1.0),
    ));
    rows.push(row(
        "  every other Proxmox call received by the simulator",
        format!(
            "{} ({} of them …/pending) in {elapsed:.1} s",
            calls.other, calls.pending
        ),
        "",
        None,
    ));
    drop(app);
    drop(sim);

    let sim = start_sim(opts, dir, 8, 5000).await?;
    let app = start_app(opts, dir, &sim, Db::Sqlite).await?;
    app.client
        .get(url_of(&app, "/"))
        .send()
        .await?
        .bytes()
        .await?;
    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        app.client
            .get(url_of(&app, "/"))
            .send()
            .await?
            .bytes()
            .await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median = percentile(&times, 50.0);
    rows.push(row(
        "dashboard single view, 5,000 CTs (fresh shared read): median",
        format!("{median:.1} ms (p99 {:.1} ms)", percentile(&times, 99.0)),
        "≤ 25 ms",
        Some(median <= 25.0),
    ));
    Ok(())
}

fn url_of(app: &App, path: &str) -> String {
    format!("{}{path}", app.base)
}

async fn discovery(opts: &Opts, dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let root = dir.join("many");
    many_templates(&root, opts.templates)?;
    let data = dir.join("discovery-data");
    std::fs::create_dir_all(&data)?;
    let (elapsed, peak) = discover_into(opts, &Db::Sqlite, &data, &root)?;
    let mib = peak as f64 / 1024.0;
    rows.push(row(
        format!("discovery of {} templates (SQLite): time", opts.templates),
        format!("{:.2} s", elapsed.as_secs_f64()),
        "≤ 8.5 s",
        Some(elapsed.as_secs_f64() <= 8.5),
    ));
    rows.push(row(
        format!("discovery of {} templates: peak RSS", opts.templates),
        format!("{mib:.1} MiB"),
        "≤ 40 MB",
        Some(mib <= 40.0),
    ));
    Ok(())
}

/// Median ms of `n` sequential GETs of `path`.
/// Medians of `n` views of `path` on each app, the apps taking turns (and which goes first
/// alternating), so that whatever else the machine does weighs on both alike.
async fn page_medians(apps: &[App; 2], path: &str, n: usize) -> Result<[f64; 2]> {
    let mut times: [Vec<f64>; 2] = [Vec::with_capacity(n), Vec::with_capacity(n)];
    for app in apps {
        let r = app.client.get(url_of(app, path)).send().await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        r.bytes().await?;
    }
    for i in 0..n {
        for k in [i % 2, (i + 1) % 2] {
            let app = &apps[k];
            let t = Instant::now();
            app.client
                .get(url_of(app, path))
                .send()
                .await?
                .bytes()
                .await?;
            times[k].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0)
    };
    let [a, b] = times;
    Ok([median(a), median(b)])
}

async fn template_pages(opts: &Opts, dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let root = dir.join("pages");
    many_templates(&root, 200)?;
    let sim = start_sim(opts, dir, 3, 0).await?;
    let sqlite = start_app(opts, dir, &sim, Db::Sqlite).await?;
    let pg = start_app(opts, dir, &sim, pg_db(opts, false).await?).await?;
    sqlite.discover(opts, &root)?;
    pg.discover(opts, &root)?;
    let apps = [sqlite, pg];
    for (what, path) in [("list", "/templates"), ("detail", "/templates/web-00100")] {
        let [sqlite, pg] = page_medians(&apps, path, opts.page_views).await?;
        let ratio = pg / sqlite;
        rows.push(row(
            format!("template {what} page (200 templates): PostgreSQL vs SQLite median, views taking turns"),
            format!("{pg:.2} ms vs {sqlite:.2} ms ({ratio:.2}×)"),
            "≤ 1.2×",
            Some(ratio <= 1.2),
        ));
    }
    Ok(())
}

async fn pg_db(opts: &Opts, redis: bool) -> Result<Db> {
    Ok(Db::Postgres {
        url: fresh_pg(&opts.pg).await?,
        redis: redis.then(|| opts.redis.clone()),
    })
}

/// One Redis prefix per data directory (serve and worker of one app share it).
fn data_key(data: &Path) -> String {
    data.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// HEAD of the working directory's repository, marked when tracked files differ from it.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(head)
            if git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()) =>
        {
            format!("{head} + uncommitted changes")
        }
        Some(head) => head,
        None => "unknown".to_owned(),
    }
}

/// The machine the figures ran on: CPU model, cores, and the load averages (1, 5, 15 min) of
/// `/proc/loadavg` — other work on the machine shows there, and skews every figure.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores ({model}), load average {}", load_average())
}

/// `/proc/loadavg`'s three averages, or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn print_table(rows: &[Row], commit: &str, machine: &str) {
    let w0 = rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(6);
    let w1 = rows
        .iter()
        .map(|r| r.value.chars().count())
        .max()
        .unwrap_or(5);
    let w2 = rows
        .iter()
        .map(|r| r.floor.chars().count())
        .max()
        .unwrap_or(5);
    println!("\nctforge performance, commit {commit}");
    println!("machine: {machine} at start, {} at end", load_average());
    println!(
        "| {:<w0$} | {:<w1$} | {:<w2$} | ok |",
        "figure", "value", "floor"
    );
    println!(
        "|{}|{}|{}|----|",
        "-".repeat(w0 + 2),
        "-".repeat(w1 + 2),
        "-".repeat(w2 + 2)
    );
    for r in rows {
        let ok = match r.ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "| {:<w0$} | {:<w1$} | {:<w2$} | {ok:<2} |",
            r.figure, r.value, r.floor
        );
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let opts = Opts::parse().sized();
    if !opts.bin.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release --bin ctforge` or pass --bin",
            opts.bin.display()
        );
    }
    let owned_scratch = opts.scratch.is_none();
    let dir = match &opts.scratch {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("ctforge-bench-{}", uuid::Uuid::new_v4().simple()))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let commit = commit();
    let machine = machine();
    if opts.quick {
        eprintln!("--quick: smaller sizes than the floor's (see --help)");
    }
    let mut rows = Vec::new();
    let skip_pg = opts.pg == "none";
    let floor = opts.figures != "images";
    let parts: Vec<&str> = match opts.figures.as_str() {
        "floor" | "all" | "images" => FLOOR_PARTS.to_vec(),
        list => list.split(',').map(str::trim).collect(),
    };
    if let Some(unknown) = parts.iter().find(|p| !FLOOR_PARTS.contains(p)) {
        bail!(
            "--figures: unknown figure `{unknown}` (floor, images, all, or a comma list of {})",
            FLOOR_PARTS.join(", ")
        );
    }
    let mut steps: Vec<(&str, Result<()>)> = Vec::new();
    if opts.figures == "images" || opts.figures == "all" {
        steps.push(("images (lxc)", images(&opts, &dir, &mut rows).await));
    }
    if floor {
        steps.extend(floor_steps(&opts, &dir, skip_pg, &parts, &mut rows).await);
    }
    let mut failed = false;
    for (name, result) in steps {
        if let Err(e) = result {
            failed = true;
            eprintln!("{name}: {e:#}");
            rows.push(row(name, format!("FAILED: {e}"), "", Some(false)));
        }
    }
    print_table(&rows, &commit, &machine);
    if owned_scratch && !failed {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("logs kept in {}", dir.display());
    }
    Ok(())
}

/// The parts of the performance floor, in the order they run.
const FLOOR_PARTS: [&str; 4] = ["creation", "dashboard", "discovery", "pages"];

/// The performance floor's figures (the `parts` of it asked for).
async fn floor_steps(
    opts: &Opts,
    dir: &Path,
    skip_pg: bool,
    parts: &[&str],
    rows: &mut Vec<Row>,
) -> Vec<(&'static str, Result<()>)> {
    let mut steps = Vec::new();
    if parts.contains(&"creation") {
        steps.push((
            "creation (SQLite)",
            creation(opts, dir, Db::Sqlite, rows).await,
        ));
        if !skip_pg {
            let result = match pg_db(opts, true).await {
                Ok(db) => creation(opts, dir, db, rows).await,
                Err(e) => Err(e),
            };
            steps.push(("creation (PostgreSQL + Redis)", result));
        }
    }
    if parts.contains(&"dashboard") {
        steps.push(("dashboard", dashboard(opts, dir, rows).await));
    }
    if parts.contains(&"discovery") {
        steps.push(("discovery", discovery(opts, dir, rows).await));
    }
    if parts.contains(&"pages") && !skip_pg {
        steps.push(("template pages", template_pages(opts, dir, rows).await));
    }
    steps
}
