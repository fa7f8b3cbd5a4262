//! The dashboard's HTTP side, on the agent's bounded server (`fleetform_runtime::http`:
//! request heads, idle clients and open connections all bounded): every answer is a copy
//! of what the poller last published, so any number of pages cost one poller. Read-only:
//! GET and HEAD only.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use fleetform_runtime::http::{Request, Response, Server, Serving};

use super::poller::Shared;
use crate::observe::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;

/// The page: one self-contained file (no build step, no CDN: classrooms may be offline).
const PAGE: &str = include_str!("page.html");

/// Bind `listen` (`IP:PORT`). A non-loopback address exposes the cluster's job names,
/// nodes and errors to the network, so it needs `allow_remote`.
pub fn bind(listen: &str, allow_remote: bool) -> Result<Server> {
    let addr: SocketAddr = listen.parse().map_err(|_| anyhow!("--listen `{listen}` is not IP:PORT (e.g. 127.0.0.1:8265)"))?;
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "--listen {addr} is reachable from other machines: the dashboard shows job names, nodes and errors to \
             anyone who can connect; add --allow-remote to mean it (the page is read-only either way)"
        );
    }
    Server::bind(addr).map_err(|e| anyhow!("cannot listen on {addr}: {e}"))
}

fn handle(req: &Request, shared: &Shared) -> Response {
    let published = shared.read().unwrap_or_else(|e| e.into_inner());
    match req.path.as_str() {
        "/" | "/index.html" => Response::new(200, "text/html; charset=utf-8", PAGE),
        "/api/status" => Response::new(200, "application/json", published.status_json.clone()),
        "/api/history" => Response::new(200, "application/json", published.history_json.clone()),
        "/metrics" => Response::new(200, METRICS_CONTENT_TYPE, published.metrics.clone()),
        path => Response::text(404, format!("no page {path}: try /, /api/status, /api/history or /metrics\n")),
    }
}

/// Serve until the returned `Serving` is dropped.
pub fn serve(server: Server, shared: Shared) -> Result<Serving> {
    server.serve(Arc::new(move |req: &Request| handle(req, &shared)))
}
