//! `fleetform dashboard` (and the one `fleetform up` serves): a live page, `/api/status`
//! (what `fleetform status --json` prints), `/api/history` (the charts' samples) and
//! `/metrics` (Prometheus), all from one poller of the cluster's store and queues
//! (docs/DESIGN.md, decision 14). It runs wherever the store is readable: beside a local
//! cluster, or on a laptop with credentials for an AWS cluster's bucket and queues (no
//! tunnel to the head).
//!
//! - `poller`: the shared observation loop and what it publishes;
//! - `server`: the HTTP routes (on `fleetform_runtime::http`, bounded), read-only;
//! - `page.html`: the page (inline SVG charts, no external resources).

pub mod poller;
pub mod server;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use fleetform_core::spec::{ClusterSpec, ProviderKind};

use crate::cluster::{self, Handles};
use crate::observe::observer::Connection;
use crate::observe::Observer;

/// Ray's dashboard port: workshop users know it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8265";

/// Seconds between observations when `--interval` is not given. Locally the store is a
/// directory: 2 s keeps the page live. On AWS every round is S3 and SQS requests on the
/// user's bill (about N+3 per round for N nodes, plus 3 per unfinished job): 10 s.
pub fn default_interval(spec: &ClusterSpec) -> Duration {
    match spec.provider.kind {
        ProviderKind::Local => Duration::from_secs(2),
        ProviderKind::Aws => Duration::from_secs(10),
    }
}

/// A running dashboard. Dropping it stops the server and the poller.
pub struct Dashboard {
    pub url: String,
    _serving: fleetform_runtime::http::Serving,
    poller: tokio::task::JoinHandle<()>,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Start the poller and the server (on the current tokio runtime).
pub fn start(spec: &ClusterSpec, handles: &Handles, server: fleetform_runtime::http::Server, every: Duration) -> Result<Dashboard> {
    let (shared, poller) = poller::start(poller::Live { observer: Observer::new(spec, handles), connection: Connection::new(handles) }, every);
    let serving = server::serve(server, shared)?;
    // `SocketAddr`'s Display already brackets an IPv6 address.
    let url = format!("http://{}/", serving.addr);
    Ok(Dashboard { url, _serving: serving, poller })
}

/// `fleetform up`'s dashboard: on `listen`, or on a free loopback port when that one is
/// taken (another cluster's dashboard), so `up` never fails for want of a page.
pub fn start_for_up(spec: &ClusterSpec, handles: &Handles, listen: &str) -> Result<(Dashboard, Option<String>)> {
    let (server, note) = match server::bind(listen, false) {
        Ok(s) => (s, None),
        Err(e) if listen == DEFAULT_LISTEN => (server::bind("127.0.0.1:0", false)?, Some(crate::errors::render(&e))),
        Err(e) => return Err(e),
    };
    Ok((start(spec, handles, server, default_interval(spec))?, note))
}

/// `fleetform dashboard [-f FILE] [--listen ADDR] [--allow-remote] [--interval S]`.
pub async fn command(file: &Path, listen: &str, allow_remote: bool, interval: Option<f64>) -> Result<i32> {
    let spec = cluster::load(file)?;
    let handles = Handles::of(&spec).await?;
    let server = server::bind(listen, allow_remote)?;
    let every = interval.map(|s| Duration::from_secs_f64(s.max(0.5))).unwrap_or_else(|| default_interval(&spec));
    let dashboard = start(&spec, &handles, server, every)?;
    println!(
        "dashboard {} (cluster `{}`, store {}, observed every {}s; Ctrl-C stops)",
        dashboard.url,
        spec.cluster_name,
        handles.store_uri,
        every.as_secs_f64()
    );
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(dashboard);
    Ok(0)
}
