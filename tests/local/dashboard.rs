//! The dashboard (docs/DESIGN.md, decision 26) as a user meets it: `fleetform up` serves it
//! beside a local cluster running a job, a real headless browser (Debian's `chromium`,
//! which `.ci/run` installs) renders the page, `/metrics` is read by a Prometheus text
//! parser, and an unreachable store gives a banner. Needs more than a unit test: agents,
//! the server and the browser are separate processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// A job long enough to be running whenever the test looks (it is cancelled at the end).
const LONG_JOB: &str = "name: long\ninput: {generate: {rows: 40000000, seed: 3, text_length: 20}}\n\
output: {uri: out, rows_per_file: 20000}\nbatch_size: 2000\nsplit: {rows_per_task: 20000}\n";

/// GET (or another method) over plain HTTP/1.0: (status, body).
fn http(method: &str, url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

/// The status a request with a `bytes`-long header line gets, sent while reading the
/// answer (the server may refuse and close before taking it all).
fn status_of_oversized_header(base: &str, bytes: usize) -> u16 {
    let host = base.strip_prefix("http://").and_then(|r| r.split('/').next()).expect("http URL");
    let s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let request = format!("GET /api/status HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n", "b".repeat(bytes));
    let sending = std::thread::spawn(move || {
        let _ = w.write_all(request.as_bytes());
    });
    let mut raw = Vec::new();
    let _ = (&s).read_to_end(&mut raw);
    let _ = sending.join();
    let raw = String::from_utf8_lossy(&raw);
    raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn status_json(base: &str) -> Value {
    let (code, body) = http("GET", &format!("{base}api/status"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/status is not JSON ({e}): {body}"))
}

/// Poll /api/status until `ok` holds (the server's poller runs every 2 s).
fn wait_for_view(base: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = status_json(base);
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last view: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `up` prints `dashboard http://…/` after the cluster is up; read up to it, then keep
/// draining its output so the pipe never fills.
fn dashboard_url(out: impl Read + Send + 'static) -> String {
    let mut lines = BufReader::new(out).lines();
    let url = loop {
        let line = lines.next().expect("up exited before printing the dashboard URL").unwrap();
        if let Some(rest) = line.strip_prefix("dashboard ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    url
}

fn chromium() -> String {
    let found = Command::new("sh").args(["-c", "command -v chromium"]).output().unwrap();
    assert!(found.status.success(), "chromium is not installed: `.ci/run` installs it (apt-get install -y chromium)");
    String::from_utf8_lossy(&found.stdout).trim().to_string()
}

/// Chromium, headless, with its own profile.
fn browser(profile: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        // Virtual time runs the page's scripts, and waits for their fetches, before the dump.
        .arg("--virtual-time-budget=5000")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn dom(profile: &Path, url: &str) -> String {
    String::from_utf8_lossy(&browser(profile, &["--dump-dom", url]).stdout).to_string()
}

/// Every sample of the metrics text, parsed by a Prometheus text parser.
fn scrape(base: &str) -> prometheus_parse::Scrape {
    let (code, text) = http("GET", &format!("{base}metrics"));
    assert_eq!(code, 200);
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

fn sample(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = s.samples.iter().find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))?;
    match found.value {
        prometheus_parse::Value::Gauge(x) | prometheus_parse::Value::Counter(x) | prometheus_parse::Value::Untyped(x) => Some(x),
        _ => None,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn done_in_store(env: &LocalEnv, job: &str) -> u64 {
    std::fs::read_dir(env.store().join("jobs").join(job).join("done")).map(|d| d.count() as u64).unwrap_or(0)
}

/// /metrics and /api/status of the same round (the poller may publish between two GETs).
fn same_round(base: &str) -> (Value, prometheus_parse::Scrape) {
    loop {
        let before = status_json(base);
        let m = scrape(base);
        let after = status_json(base);
        let at = chrono::DateTime::parse_from_rfc3339(before["observed_at"].as_str().unwrap()).unwrap();
        let stamp = sample(&m, "fleetform_observed_timestamp_seconds", &[]).unwrap();
        if before["observed_at"] == after["observed_at"] && (stamp - at.timestamp_millis() as f64 / 1000.0).abs() < 0.001 {
            return (before, m);
        }
    }
}

#[test]
fn dashboard_shows_a_running_job_to_the_api_prometheus_and_a_browser() {
    let env = LocalEnv::new(2, 1);
    let mut sup = env.up(60);
    let base = dashboard_url(sup.child.stdout.take().unwrap());
    assert!(base.starts_with("http://127.0.0.1:"), "loopback by default: {base}");
    let job = env.write_job("long.yaml", LONG_JOB);
    let out = env.run(&["submit", job.to_str().unwrap()]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let running = |v: &Value| v["jobs"][0]["job_id"] == id.as_str() && v["jobs"][0]["done"].as_u64() >= Some(2) && v["jobs"][0]["state"] == "running";
    let v = wait_for_view(&base, "the job running with tasks done", running);

    // /api/status: the nodes, their slots, the job, the queue.
    let nodes: Vec<&str> = v["nodes"].as_array().unwrap().iter().map(|n| n["node_id"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["t-w0-0", "t-w1-0"]);
    assert!(v["nodes"].as_array().unwrap().iter().all(|n| n["status"] == "running" && n["slots"] == 1), "{v:#}");
    let worker = v["node_types"].as_array().unwrap().iter().find(|t| t["node_type"] == "worker").unwrap();
    assert_eq!((worker["nodes"]["running"].as_u64(), worker["slots"]["total"].as_u64()), (Some(2), Some(2)));
    let j = &v["jobs"][0];
    assert_eq!(j["tasks"], 2000);
    assert!(j["rows_done"].as_u64().unwrap() >= 40_000 && j["rows_per_second"].as_f64().unwrap() > 0.0, "{j:#}");
    assert!(j["eta_seconds"].as_f64().unwrap() > 0.0);
    assert!(j["log"].as_array().unwrap().iter().any(|l| l["line"].as_str().unwrap().contains(" done on t-w")), "{j:#}");
    assert_eq!(v["queues"][0]["class"], "default");

    // Its figures agree with the store: a round that started after a count of the done
    // records shows at least that many, and no more than there are after it.
    let before = done_in_store(&env, &id);
    let asked = chrono::Utc::now();
    let v = wait_for_view(&base, "a round after the count", |v| {
        chrono::DateTime::parse_from_rfc3339(v["observed_at"].as_str().unwrap()).unwrap() > asked
    });
    let after = done_in_store(&env, &id);
    let done = v["jobs"][0]["done"].as_u64().unwrap();
    assert!(before <= done && done <= after, "store {before}..{after} done, the dashboard says {done}");
    let q = &v["queues"][0];
    let (queued, in_flight, remaining) = (q["queued"].as_u64().unwrap(), q["in_flight"].as_u64().unwrap(), q["tasks_remaining"].as_u64().unwrap());
    // The round reads the jobs, then the queue: tasks finish in between (many per second
    // here), so the queue can only hold less than what was left, never more than that
    // plus a commit per slot (done record written, message not yet deleted).
    assert!(queued + in_flight <= remaining + 2, "the queue holds no more than what is left: {q}");
    assert!(queued + in_flight + 200 >= remaining, "and not far less (200 tasks finish in well over the round's reads): {q}");

    // /metrics says what /api/status says (once `up`'s autoscaler has persisted a round:
    // under load its first round can come after the job's first tasks).
    wait_for_view(&base, "an autoscaler round", |v| !v["autoscaler"].is_null());
    let (v, m) = same_round(&base);
    let j = &v["jobs"][0];
    assert_eq!(sample(&m, "fleetform_nodes", &[("node_type", "worker"), ("market", "on-demand"), ("state", "running")]), Some(2.0));
    assert_eq!(sample(&m, "fleetform_slots", &[("state", "busy")]), v["slots"]["busy"].as_f64());
    assert_eq!(sample(&m, "fleetform_tasks", &[("job", &id), ("state", "done")]), j["done"].as_f64());
    assert_eq!(sample(&m, "fleetform_job_rows_total", &[("job", &id)]), j["rows_done"].as_f64());
    assert_eq!(sample(&m, "fleetform_queue_depth", &[("class", "default")]), v["queues"][0]["queued"].as_f64());
    assert!(sample(&m, "fleetform_autoscaler_round_age_seconds", &[]).is_some(), "up runs the autoscaler");

    // The page: self-contained, read-only.
    let (code, page) = http("GET", &base);
    assert_eq!(code, 200);
    assert!(page.contains("<title>fleetform dashboard</title>"));
    assert!(!page.contains(" src=") && !page.contains("<link"), "no external resource");
    assert_eq!(http("POST", &format!("{base}api/status")).0, 405, "read-only");
    // Bounded: a 64 MB header line is refused after its first kilobytes, and the page
    // goes on answering.
    assert_eq!(status_of_oversized_header(&base, 64 << 20), 431);
    assert_eq!(http("GET", &format!("{base}api/status")).0, 200);

    // A real browser runs the page's script: the DOM shows the job, its progress, the nodes.
    let profile = env.path("chromium");
    let rendered = dom(&profile, &base);
    assert!(rendered.contains("data-loaded=\"true\""), "{rendered}");
    assert!(rendered.contains(&id) && rendered.contains("tasks done") && rendered.contains("rows/s"), "{rendered}");
    assert!(rendered.contains("t-w0-0") && rendered.contains("t-w1-0"), "{rendered}");
    // The control: the same page with no server behind it (a file) shows no data and
    // says so, so the checks above see what the script fetched, not the page's text.
    std::fs::write(env.path("page.html"), &page).unwrap();
    let control = dom(&profile, &format!("file://{}", env.path("page.html").display()));
    assert!(!control.contains(&id) && !control.contains("t-w0-0") && control.contains("data-loaded=\"false\""), "{control}");
    assert!(control.contains("the dashboard server does not answer"), "{control}");
    let shot = std::env::var("FLEETFORM_DASHBOARD_SCREENSHOT").unwrap_or_else(|_| env.path("dashboard.png").display().to_string());
    browser(&profile, &[&format!("--screenshot={shot}"), "--window-size=1600,1500", &base]);
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"), "a PNG at {shot}");

    assert!(env.run(&["job", "cancel", &id]).status.success());
    drop(sup);
}

#[test]
fn an_unreachable_store_is_a_banner_not_a_blank_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocked"), "a file where the store's directory should be").unwrap();
    let spec = dir.path().join("cluster.yaml");
    std::fs::write(
        &spec,
        format!(
            "cluster_name: u\nprovider: {{type: local}}\nstorage: {{path: {}}}\nhead_node_type: head\n\
             available_node_types:\n  head: {{resources: {{CPU: 0}}}}\n  worker: {{resources: {{CPU: 1}}, min_workers: 1}}\n",
            dir.path().join("blocked/store").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut server = fleetform()
        .args(["dashboard", "-f", spec.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let base = dashboard_url(server.stdout.take().unwrap());
    let v = wait_for_view(&base, "the store error", |v| !v["errors"].as_array().unwrap().is_empty());
    let error = v["errors"][0].as_str().unwrap();
    assert!(error.contains("cannot open the cluster store") && error.contains("blocked/store"), "{error}");
    assert!(sample(&scrape(&base), "fleetform_observe_errors", &[]).unwrap() >= 1.0);
    let rendered = dom(&dir.path().join("chromium"), &base);
    assert!(rendered.contains("role=\"alert\"") && rendered.contains("cannot open the cluster store"), "{rendered}");

    let status = fleetform().args(["status", "-f", spec.to_str().unwrap()]).output().unwrap();
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stdout).contains("!! cannot open the cluster store"));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.id() as i32), nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait().unwrap().success(), "SIGTERM stops the dashboard cleanly");
}

#[test]
fn dashboard_and_status_refuse_or_survive_what_they_should() {
    let env = LocalEnv::new(1, 1);
    let out = env.run(&["dashboard", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --allow-remote"), "a non-loopback address must be meant");
    // `status --watch | head -1`: the pipe closes after one line; fleetform exits cleanly.
    let cmd =
        format!("set -o pipefail; '{}' status -f '{}' --watch --interval 0.5 | head -1", env!("CARGO_BIN_EXE_fleetform"), env.cluster.display());
    let out = Command::new("bash").arg("-c").arg(cmd).current_dir(env.dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("\x1b[H\x1b[2Jevery 0.5s"));
}

#[test]
fn each_agent_serves_its_own_metrics_when_the_spec_sets_a_port() {
    let env = LocalEnv::new(1, 1);
    let port = free_port();
    let spec = std::fs::read_to_string(&env.cluster).unwrap();
    std::fs::write(&env.cluster, format!("{spec}agent_metrics_port: {port}\n")).unwrap();
    let _sup = env.up(60);
    let job = env.write_job(
        "gen.yaml",
        "name: gen\ninput: {generate: {rows: 20000, seed: 1, text_length: 50}}\noutput: {uri: raw}\nbatch_size: 1000\nsplit: {rows_per_task: 5000}\n",
    );
    assert!(env.run(&["submit", job.to_str().unwrap(), "--wait"]).status.success());
    let m = scrape(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(sample(&m, "fleetform_agent_rows_total", &[]), Some(20_000.0), "agent 0 on port {port} did every row");
    let units = m.samples.iter().find(|s| s.metric == "fleetform_agent_unit_seconds").expect("a latency histogram");
    let prometheus_parse::Value::Histogram(buckets) = &units.value else { panic!("not a histogram: {units:?}") };
    assert_eq!(buckets.last().map(|b| b.count), Some(20.0), "20 units of 1000 rows, all timed: {buckets:?}");
}
