//! The dashboard's HTTP side, on `tiny_http` (already the agents' /metrics server, so it
//! costs the build nothing): every answer is a copy of what the poller last published,
//! so one thread serves any number of pages. Read-only: GET and HEAD only.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use tiny_http::{Header, Method, Request, Response, Server};

use super::poller::Shared;
use crate::observe::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;

/// The page: one self-contained file (no build step, no CDN: classrooms may be offline).
const PAGE: &str = include_str!("page.html");

/// Bind `listen` (`IP:PORT`). A non-loopback address exposes the cluster's job names,
/// nodes and errors to the network, so it needs `allow_remote`.
pub fn bind(listen: &str, allow_remote: bool) -> Result<Arc<Server>> {
    let addr: SocketAddr = listen.parse().map_err(|_| anyhow!("--listen `{listen}` is not IP:PORT (e.g. 127.0.0.1:8265)"))?;
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "--listen {addr} is reachable from other machines: the dashboard shows job names, nodes and errors to \
             anyone who can connect; add --allow-remote to mean it (the page is read-only either way)"
        );
    }
    let server = Server::http(addr).map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    Ok(Arc::new(server))
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header")
}

fn respond(req: Request, status: u16, content_type: &str, body: String) {
    let response = Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"));
    // A client that went away is its own business.
    let _ = req.respond(response);
}

fn handle(req: Request, shared: &Shared) {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return respond(req, 405, "text/plain; charset=utf-8", "the dashboard is read-only: GET and HEAD only\n".into());
    }
    let path = req.url().split('?').next().unwrap_or("/").to_string();
    let published = shared.read().unwrap_or_else(|e| e.into_inner());
    let (content_type, body) = match path.as_str() {
        "/" | "/index.html" => ("text/html; charset=utf-8", PAGE.to_string()),
        "/api/status" => ("application/json", published.status_json.clone()),
        "/api/history" => ("application/json", published.history_json.clone()),
        "/metrics" => (METRICS_CONTENT_TYPE, published.metrics.clone()),
        _ => {
            drop(published);
            return respond(req, 404, "text/plain; charset=utf-8", format!("no page {path}: try /, /api/status, /api/history or /metrics\n"));
        }
    };
    drop(published);
    respond(req, 200, content_type, body);
}

/// Serve until the server is unblocked (`Server::unblock`).
pub fn serve(server: Arc<Server>, shared: Shared) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            handle(req, &shared);
        }
    })
}
