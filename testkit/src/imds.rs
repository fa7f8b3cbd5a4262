//! An IMDSv2 emulator for tests, on 127.0.0.1: the agent's IMDS client and watcher, and
//! the agent binary's `--imds-endpoint`, are tested against it; or on a socket the test
//! bound ([`ImdsEmulator::serve_on`]), e.g. 169.254.169.254:80 in the network namespace
//! of a booted node (tests/e2e/boot.rs), with the instance profile's credentials
//! (`iam/security-credentials/`) and the user data. Nothing shipped uses it (the local
//! provider delivers notices through a notice file instead).
//!
//! No IMDS emulator package can be installed here (amazon-ec2-metadata-mock is a Go
//! binary), so this follows the real service's rules closely enough that the agent runs the
//! same code against it as on EC2:
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1–21600) returns
//!   a token and echoes the TTL header; a missing or out-of-range TTL is a 400, and a
//!   request carrying `X-Forwarded-For` is a 403 (IMDS refuses tokens through proxies).
//! - Every `GET /latest/...` needs a valid, unexpired `X-aws-ec2-metadata-token`, else 401:
//!   the emulator behaves like an instance launched with `HttpTokens=required`, as every
//!   fleetform node is. Expiry is real (wall clock seconds), so tests can use a 1 s TTL.
//! - `spot/instance-action` and `events/recommendations/rebalance` are 404 until raised;
//!   `events/maintenance/scheduled` is `[]` with 200 when there are none (see
//!   [`NO_SCHEDULED_EVENTS`]).
//!
//! Trigger endpoints live outside `/latest/` so no real IMDS path is shadowed, and need no
//! token (they stand for EC2's control plane, not for a process on the instance):
//! `POST /fleetform/spot-interruption?in_seconds=120&action=terminate`,
//! `POST /fleetform/rebalance`, `POST /fleetform/scheduled-event?code=system-reboot&in_seconds=3600`,
//! `POST /fleetform/invalidate-tokens`, `POST /fleetform/reset`. Query values are plain
//! tokens (numbers, codes); they are not percent-decoded.
use chrono::{DateTime, Utc};
pub use fleetform_core::imds::SPOT_NOTICE_LEAD;
use fleetform_core::imds::{
    format_scheduled_time, headers, notice_time, paths, Rebalance, ScheduledEvent, SpotAction,
};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest token lifetime IMDS grants (6 hours); 0 is refused as well.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 21_600;

/// What real IMDS answers on `events/maintenance/scheduled` when nothing is scheduled:
/// 200 with an empty JSON array. AWS documents the path as "contains a JSON string with
/// information about the events" when there are some; aws-node-termination-handler, which
/// polls it on every node, treats any non-2xx there as an error, so an empty array is the
/// steady state. The client also reads a 404 or an empty body as "none", to be lenient.
pub const NO_SCHEDULED_EVENTS: &str = "[]";

/// Length of an emulated maintenance window (`NotAfter - NotBefore`); any plausible value
/// works, the agent only acts on `NotBefore`.
pub const SCHEDULED_EVENT_WINDOW: Duration = Duration::from_secs(3600);

/// Default lead time of an emulated scheduled event when the trigger gives none.
pub const SCHEDULED_EVENT_LEAD: Duration = Duration::from_secs(3600);

/// Connect, read and write timeout of [`trigger`]: the emulator is on loopback and answers
/// at once, so a slow answer means it is gone; a CLI should say so rather than hang.
pub const TRIGGER_TIMEOUT: Duration = Duration::from_secs(5);

const TRIGGER_PREFIX: &str = "/fleetform/";
const SPOT_ACTIONS: [&str; 3] = ["terminate", "stop", "hibernate"];

/// A state change asked of an emulator, locally ([`ImdsEmulator`]'s methods) or over HTTP
/// ([`trigger`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A spot interruption notice: `action` (terminate, stop or hibernate) `after` from now.
    SpotInterruption { action: String, after: Duration },
    /// A rebalance recommendation, noticed now.
    Rebalance,
    /// An active scheduled event with `code` (e.g. `system-reboot`) starting `after` from now.
    ScheduledEvent { code: String, after: Duration },
    /// Every issued token becomes invalid, as if the instance had been stopped and started.
    InvalidateTokens,
    /// Back to a quiet node: no notices, no events (tokens stay valid).
    Reset,
}

impl Trigger {
    /// The trigger endpoint's path and query, e.g.
    /// `/fleetform/spot-interruption?in_seconds=120&action=terminate`.
    pub fn path_and_query(&self) -> String {
        match self {
            Trigger::SpotInterruption { action, after } => format!(
                "{TRIGGER_PREFIX}spot-interruption?in_seconds={}&action={action}",
                after.as_secs()
            ),
            Trigger::Rebalance => format!("{TRIGGER_PREFIX}rebalance"),
            Trigger::ScheduledEvent { code, after } => format!(
                "{TRIGGER_PREFIX}scheduled-event?code={code}&in_seconds={}",
                after.as_secs()
            ),
            Trigger::InvalidateTokens => format!("{TRIGGER_PREFIX}invalidate-tokens"),
            Trigger::Reset => format!("{TRIGGER_PREFIX}reset"),
        }
    }

    /// Reads a trigger endpoint's path and query; `Err` is the 400/404 message.
    fn parse(path: &str, query: &str) -> Result<Trigger, Reply> {
        let params = parse_query(query);
        let seconds = |default: Duration| -> Result<Duration, Reply> {
            match params.get("in_seconds") {
                None => Ok(default),
                Some(text) => text.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                    Reply::text(
                        400,
                        format!("in_seconds must be a whole number, got {text:?}\n"),
                    )
                }),
            }
        };
        match path.strip_prefix(TRIGGER_PREFIX).unwrap_or(path) {
            "spot-interruption" => {
                let action = params.get("action").copied().unwrap_or("terminate");
                if !SPOT_ACTIONS.contains(&action) {
                    return Err(Reply::text(
                        400,
                        format!("action must be one of {SPOT_ACTIONS:?}, got {action:?}\n"),
                    ));
                }
                Ok(Trigger::SpotInterruption {
                    action: action.to_owned(),
                    after: seconds(SPOT_NOTICE_LEAD)?,
                })
            }
            "rebalance" => Ok(Trigger::Rebalance),
            "scheduled-event" => Ok(Trigger::ScheduledEvent {
                code: params
                    .get("code")
                    .copied()
                    .unwrap_or("system-reboot")
                    .to_owned(),
                after: seconds(SCHEDULED_EVENT_LEAD)?,
            }),
            "invalidate-tokens" => Ok(Trigger::InvalidateTokens),
            "reset" => Ok(Trigger::Reset),
            other => Err(Reply::text(404, format!("no trigger named {other:?}\n"))),
        }
    }
}

/// A running emulator. Dropping it stops the server thread.
pub struct ImdsEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl ImdsEmulator {
    /// Starts an emulator for one instance on 127.0.0.1 with a free port.
    pub fn start(instance_id: &str, instance_type: &str, az: &str) -> io::Result<ImdsEmulator> {
        Self::start_on(0, instance_id, instance_type, az)
    }

    /// Starts an emulator on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(
        port: u16,
        instance_id: &str,
        instance_type: &str,
        az: &str,
    ) -> io::Result<ImdsEmulator> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        Self::serve_on(listener, instance_id, instance_type, az)
    }

    /// Starts an emulator on a socket the caller bound, e.g. 169.254.169.254:80 inside a
    /// network namespace (tests/e2e/boot_net.rs), where a booted node finds it as on EC2.
    pub fn serve_on(
        listener: std::net::TcpListener,
        instance_id: &str,
        instance_type: &str,
        az: &str,
    ) -> io::Result<ImdsEmulator> {
        let server = tiny_http::Server::from_listener(listener, None).map_err(io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("IMDS emulator is not listening on TCP"))?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            state: Mutex::new(NodeState::new(instance_id, instance_type, az)),
            requests: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let thread = std::thread::Builder::new()
            .name(format!("imds-emulator-{}", addr.port()))
            .spawn({
                let (server, shared) = (server.clone(), shared.clone());
                move || serve(&server, &shared)
            })?;
        Ok(ImdsEmulator {
            addr,
            shared,
            server,
            thread: Some(thread),
        })
    }

    /// The base URL to give an IMDS client, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves the instance profile's role: `iam/security-credentials/` lists `role`, and
    /// `iam/security-credentials/<role>` hands out `credentials` as EC2 does, so the AWS
    /// SDKs' default chain (the agent's, the AWS CLI's) finds them with no configuration.
    pub fn set_role_credentials(&self, role: &str, credentials: RoleCredentials) {
        self.shared.state().role = Some((role.to_owned(), credentials));
    }

    /// What `GET /latest/user-data` returns (404 until set, as on an instance without).
    pub fn set_user_data(&self, user_data: &str) {
        self.shared.state().user_data = Some(user_data.to_owned());
    }

    /// A terminate notice taking effect `after` from now (EC2 gives [`SPOT_NOTICE_LEAD`]).
    pub fn raise_spot_interruption(&self, after: Duration) {
        self.raise_spot_action("terminate", after);
    }

    /// A spot notice with another action (`stop`, `hibernate`).
    pub fn raise_spot_action(&self, action: &str, after: Duration) {
        self.apply(Trigger::SpotInterruption {
            action: action.to_owned(),
            after,
        });
    }

    pub fn raise_rebalance(&self) {
        self.apply(Trigger::Rebalance);
    }

    /// An active scheduled event with `code` starting `after` from now.
    pub fn schedule_event(&self, code: &str, after: Duration) {
        self.apply(Trigger::ScheduledEvent {
            code: code.to_owned(),
            after,
        });
    }

    /// Makes every issued token invalid: the next GET with one gets a 401.
    pub fn invalidate_tokens(&self) {
        self.apply(Trigger::InvalidateTokens);
    }

    /// Clears notices and events.
    pub fn reset(&self) {
        self.apply(Trigger::Reset);
    }

    pub fn apply(&self, what: Trigger) {
        self.shared.state().apply(what, Utc::now());
    }

    /// Requests served so far (every method and path, triggers included).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ImdsEmulator {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    state: Mutex<NodeState>,
    requests: AtomicU64,
    stopping: AtomicBool,
}

impl Shared {
    /// The state, even after a panic elsewhere: it stays consistent between statements.
    fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The temporary credentials of an instance profile's role (what EC2 serves at
/// `/latest/meta-data/iam/security-credentials/<role>`). Against moto any key works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
}

/// The document EC2 serves for a role: `Code`, `LastUpdated`, `Type`, the keys, and
/// `Expiration` (EC2 rotates them hours ahead; the SDKs refresh before it).
fn credentials_document(c: &RoleCredentials, now: DateTime<Utc>) -> String {
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    serde_json::json!({
        "Code": "Success",
        "LastUpdated": time(now),
        "Type": "AWS-HMAC",
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key,
        "Token": c.token,
        "Expiration": time(now + chrono::Duration::hours(6)),
    })
    .to_string()
}

const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const USER_DATA_PATH: &str = "/latest/user-data";

/// What the emulated instance knows.
struct NodeState {
    /// The instance profile's role and its credentials, when it has one.
    role: Option<(String, RoleCredentials)>,
    user_data: Option<String>,
    instance_id: String,
    instance_type: String,
    az: String,
    /// Token → expiry.
    tokens: HashMap<String, Instant>,
    spot: Option<SpotAction>,
    rebalance: Option<Rebalance>,
    scheduled: Vec<ScheduledEvent>,
}

impl NodeState {
    fn new(instance_id: &str, instance_type: &str, az: &str) -> NodeState {
        NodeState {
            role: None,
            user_data: None,
            instance_id: instance_id.to_owned(),
            instance_type: instance_type.to_owned(),
            az: az.to_owned(),
            tokens: HashMap::new(),
            spot: None,
            rebalance: None,
            scheduled: Vec::new(),
        }
    }

    fn apply(&mut self, what: Trigger, now: DateTime<Utc>) {
        match what {
            Trigger::SpotInterruption { action, after } => {
                self.spot = Some(SpotAction {
                    action,
                    time: notice_time(now, after),
                });
            }
            Trigger::Rebalance => {
                self.rebalance = Some(Rebalance {
                    notice_time: notice_time(now, Duration::ZERO),
                });
            }
            Trigger::ScheduledEvent { code, after } => {
                let not_before = notice_time(now, after);
                let not_after = notice_time(not_before, SCHEDULED_EVENT_WINDOW);
                let event_id = format!(
                    "instance-event-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..17]
                );
                // EC2's wording for reboots; the others are close enough, since the agent
                // acts on `Code` and the times only.
                let description = match code.as_str() {
                    "instance-reboot" | "system-reboot" => "scheduled reboot",
                    "instance-retirement" => "scheduled retirement",
                    "instance-stop" => "scheduled stop",
                    _ => "scheduled maintenance",
                };
                self.scheduled.push(ScheduledEvent {
                    not_before: format_scheduled_time(not_before),
                    code,
                    description: description.to_owned(),
                    event_id,
                    not_after: format_scheduled_time(not_after),
                    state: "active".to_owned(),
                });
            }
            Trigger::InvalidateTokens => self.tokens.clear(),
            Trigger::Reset => {
                self.spot = None;
                self.rebalance = None;
                self.scheduled.clear();
            }
        }
    }

    /// `PUT /latest/api/token`.
    fn issue_token(&mut self, ttl_header: Option<&str>, now: Instant) -> Reply {
        let Some(text) = ttl_header else {
            return Reply::text(400, format!("missing {}\n", headers::TOKEN_TTL_SECONDS));
        };
        let ttl = match text.trim().parse::<u64>() {
            Ok(ttl) if (1..=MAX_TOKEN_TTL_SECONDS).contains(&ttl) => ttl,
            _ => {
                return Reply::text(
                    400,
                    format!(
                        "{} must be 1-{MAX_TOKEN_TTL_SECONDS}, got {text:?}\n",
                        headers::TOKEN_TTL_SECONDS
                    ),
                )
            }
        };
        self.tokens.retain(|_, expiry| *expiry > now);
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.tokens
            .insert(token.clone(), now + Duration::from_secs(ttl));
        Reply::text(200, token).with_header(headers::TOKEN_TTL_SECONDS, ttl.to_string())
    }

    /// Seconds left on `token`, or `None` when it is unknown or expired.
    fn token_ttl_left(&self, token: Option<&str>, now: Instant) -> Option<u64> {
        let expiry = *self.tokens.get(token?)?;
        let left = expiry
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())?;
        // Round up: a token with 0.4 s left is still valid.
        Some(left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }

    /// `GET /latest/meta-data/...` after the token check.
    fn metadata(&self, path: &str) -> Reply {
        match path {
            paths::INSTANCE_ID => Reply::text(200, self.instance_id.clone()),
            paths::INSTANCE_TYPE => Reply::text(200, self.instance_type.clone()),
            paths::AVAILABILITY_ZONE => Reply::text(200, self.az.clone()),
            paths::SPOT_INSTANCE_ACTION => match &self.spot {
                Some(spot) => json(spot),
                None => Reply::not_found(),
            },
            paths::REBALANCE => match &self.rebalance {
                Some(rebalance) => json(rebalance),
                None => Reply::not_found(),
            },
            paths::SCHEDULED_EVENTS if self.scheduled.is_empty() => {
                Reply::text(200, NO_SCHEDULED_EVENTS.to_owned())
            }
            paths::SCHEDULED_EVENTS => json(&self.scheduled),
            USER_DATA_PATH => match &self.user_data {
                Some(text) => Reply::text(200, text.clone()),
                None => Reply::not_found(),
            },
            _ => self.role_credentials(path),
        }
    }

    /// `iam/security-credentials/` (the role's name) and `.../<role>` (its document).
    fn role_credentials(&self, path: &str) -> Reply {
        let (Some(rest), Some((role, credentials))) = (path.strip_prefix(CREDENTIALS_PATH), &self.role) else {
            return Reply::not_found();
        };
        match rest {
            "" => Reply::text(200, role.clone()),
            name if name == role => Reply::text(200, credentials_document(credentials, Utc::now())),
            _ => Reply::not_found(),
        }
    }
}

fn json<T: serde::Serialize>(document: &T) -> Reply {
    Reply::text(
        200,
        serde_json::to_string(document).expect("IMDS documents serialise"),
    )
}

fn parse_query(query: &str) -> HashMap<&str, &str> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect()
}

/// An HTTP answer, built apart from tiny_http so the routing is plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn not_found() -> Reply {
        Reply::text(404, "Not Found\n")
    }

    fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// The parts of a request the routing looks at.
struct Incoming<'a> {
    method: &'a str,
    url: &'a str,
    header: &'a dyn Fn(&'static str) -> Option<String>,
}

fn route(shared: &Shared, request: &Incoming<'_>) -> Reply {
    let (path, query) = request.url.split_once('?').unwrap_or((request.url, ""));
    let now = Instant::now();
    if path.starts_with(TRIGGER_PREFIX) {
        if request.method != "POST" {
            return Reply::text(405, "triggers take POST\n");
        }
        return match Trigger::parse(path, query) {
            Ok(what) => {
                tracing::info!(?what, "IMDS emulator trigger");
                shared.state().apply(what, Utc::now());
                Reply::text(200, "ok\n")
            }
            Err(reply) => reply,
        };
    }
    if path == paths::TOKEN {
        if request.method != "PUT" {
            return Reply::text(405, "Method Not Allowed\n");
        }
        if (request.header)("X-Forwarded-For").is_some() {
            return Reply::text(403, "Forbidden\n");
        }
        let ttl = (request.header)(headers::TOKEN_TTL_SECONDS);
        return shared.state().issue_token(ttl.as_deref(), now);
    }
    if !path.starts_with("/latest/") {
        return Reply::not_found();
    }
    if request.method != "GET" {
        return Reply::text(405, "Method Not Allowed\n");
    }
    let state = shared.state();
    let token = (request.header)(headers::TOKEN);
    let Some(ttl_left) = state.token_ttl_left(token.as_deref(), now) else {
        return Reply::text(401, "Unauthorized\n");
    };
    // Real IMDS tells the caller how long its token has left on every answer.
    state
        .metadata(path)
        .with_header(headers::TOKEN_TTL_SECONDS, ttl_left.to_string())
}

fn serve(server: &tiny_http::Server, shared: &Shared) {
    while !shared.stopping.load(Ordering::SeqCst) {
        let request = match server.recv() {
            Ok(request) => request,
            // recv fails when unblocked by Drop, or on an accept error: re-check and go on.
            Err(_) => continue,
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_owned())
        };
        let method = request.method().as_str().to_owned();
        let reply = route(
            shared,
            &Incoming {
                method: &method,
                url: request.url(),
                header: &header,
            },
        );
        let mut response =
            tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
        let content_type = ("Content-Type", "text/plain".to_owned());
        for (name, value) in reply.headers.iter().chain(std::iter::once(&content_type)) {
            if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(header);
            }
        }
        if let Err(err) = request.respond(response) {
            tracing::debug!(%err, "IMDS emulator: client went away");
        }
    }
}

/// Asks the emulator at `endpoint` (`http://127.0.0.1:PORT`) to change its node's state,
/// with a one-shot HTTP/1.1 POST over a plain TCP stream (for a test whose emulator is in
/// another process's hands). Loopback only: the trigger endpoints have no authentication, so nothing should
/// ever send them across a network.
pub fn trigger(endpoint: &str, what: Trigger) -> io::Result<()> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| {
            invalid(format!(
                "IMDS emulator endpoint {endpoint:?} must start with http://"
            ))
        })?
        .trim_end_matches('/');
    // IPv4 first: `localhost` may resolve to ::1 too, and the emulator listens on 127.0.0.1.
    let addr = authority
        .to_socket_addrs()?
        .filter(|addr| addr.ip().is_loopback())
        .min_by_key(|addr| addr.is_ipv6())
        .ok_or_else(|| {
            invalid(format!(
                "IMDS emulator endpoint {endpoint:?} is not on loopback"
            ))
        })?;
    let mut stream = TcpStream::connect_timeout(&addr, TRIGGER_TIMEOUT)?;
    stream.set_read_timeout(Some(TRIGGER_TIMEOUT))?;
    stream.set_write_timeout(Some(TRIGGER_TIMEOUT))?;
    let path = what.path_and_query();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status_line = answer.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status.starts_with('2') {
        Ok(())
    } else {
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.trim())
            .unwrap_or_default();
        Err(io::Error::other(format!(
            "IMDS emulator at {endpoint} refused POST {path}: {status_line} {body}"
        )))
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One raw HTTP/1.1 exchange; returns (status, headers+body text).
    fn raw(emulator: &ImdsEmulator, request: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(emulator.addr).unwrap();
        stream.set_read_timeout(Some(TRIGGER_TIMEOUT)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, answer)
    }

    fn put_token(emulator: &ImdsEmulator, ttl: Option<&str>) -> (u16, String) {
        let ttl = ttl
            .map(|ttl| format!("{}: {ttl}\r\n", headers::TOKEN_TTL_SECONDS))
            .unwrap_or_default();
        raw(
            emulator,
            &format!(
                "PUT {} HTTP/1.1\r\nHost: x\r\n{ttl}Content-Length: 0\r\nConnection: close\r\n\r\n",
                paths::TOKEN
            ),
        )
    }

    fn get(emulator: &ImdsEmulator, path: &str, token: Option<&str>) -> (u16, String) {
        let token = token
            .map(|t| format!("{}: {t}\r\n", headers::TOKEN))
            .unwrap_or_default();
        raw(
            emulator,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{token}Connection: close\r\n\r\n"),
        )
    }

    fn body(answer: &str) -> &str {
        answer.split_once("\r\n\r\n").unwrap().1
    }

    fn emulator() -> ImdsEmulator {
        ImdsEmulator::start("i-0123456789abcdef0", "c7i.large", "us-east-1a").unwrap()
    }

    #[test]
    fn token_ttl_must_be_between_1_and_21600() {
        let emulator = emulator();
        for bad in [None, Some("0"), Some("21601"), Some("-1"), Some("soon")] {
            assert_eq!(put_token(&emulator, bad).0, 400, "ttl {bad:?}");
        }
        for good in ["1", "21600"] {
            let (status, answer) = put_token(&emulator, Some(good));
            assert_eq!(status, 200);
            let echoed = format!("{}: {good}", headers::TOKEN_TTL_SECONDS).to_lowercase();
            assert!(answer.to_lowercase().contains(&echoed), "{answer}");
        }
    }

    #[test]
    fn gets_need_a_valid_token() {
        let emulator = emulator();
        assert_eq!(get(&emulator, paths::INSTANCE_ID, None).0, 401);
        assert_eq!(get(&emulator, paths::INSTANCE_ID, Some("forged")).0, 401);
        // Token first, then path: an unknown path without a token is still a 401.
        assert_eq!(
            get(&emulator, "/latest/meta-data/nothing-here", None).0,
            401
        );
        let (_, answer) = put_token(&emulator, Some("60"));
        let token = body(&answer).to_owned();
        let (status, answer) = get(&emulator, paths::INSTANCE_ID, Some(&token));
        assert_eq!((status, body(&answer)), (200, "i-0123456789abcdef0"));
        assert_eq!(
            get(&emulator, "/latest/meta-data/nothing-here", Some(&token)).0,
            404
        );
        emulator.invalidate_tokens();
        assert_eq!(get(&emulator, paths::INSTANCE_ID, Some(&token)).0, 401);
        assert!(emulator.requests() >= 7);
    }

    #[test]
    fn tokens_expire_after_their_ttl() {
        let emulator = emulator();
        let (_, answer) = put_token(&emulator, Some("1"));
        let token = body(&answer).to_owned();
        assert_eq!(
            get(&emulator, paths::AVAILABILITY_ZONE, Some(&token)).0,
            200
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            get(&emulator, paths::AVAILABILITY_ZONE, Some(&token)).0,
            401
        );
    }

    #[test]
    fn tokens_through_a_proxy_are_refused() {
        let emulator = emulator();
        let request = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n{}: 60\r\nConnection: close\r\n\r\n",
            paths::TOKEN,
            headers::TOKEN_TTL_SECONDS
        );
        assert_eq!(raw(&emulator, &request).0, 403);
    }

    #[test]
    fn notices_are_absent_until_raised_and_triggers_need_no_token() {
        let emulator = emulator();
        let (_, answer) = put_token(&emulator, Some("60"));
        let token = body(&answer).to_owned();
        assert_eq!(
            get(&emulator, paths::SPOT_INSTANCE_ACTION, Some(&token)).0,
            404
        );
        assert_eq!(get(&emulator, paths::REBALANCE, Some(&token)).0, 404);
        let (status, answer) = get(&emulator, paths::SCHEDULED_EVENTS, Some(&token));
        assert_eq!((status, body(&answer)), (200, NO_SCHEDULED_EVENTS));

        let endpoint = emulator.endpoint();
        trigger(
            &endpoint,
            Trigger::SpotInterruption {
                action: "stop".into(),
                after: SPOT_NOTICE_LEAD,
            },
        )
        .unwrap();
        trigger(&endpoint, Trigger::Rebalance).unwrap();
        trigger(
            &endpoint,
            Trigger::ScheduledEvent {
                code: "system-reboot".into(),
                after: SCHEDULED_EVENT_LEAD,
            },
        )
        .unwrap();

        let (status, answer) = get(&emulator, paths::SPOT_INSTANCE_ACTION, Some(&token));
        assert_eq!(status, 200);
        let spot: SpotAction = serde_json::from_str(body(&answer)).unwrap();
        assert_eq!(spot.action, "stop");
        let lead = spot.time - Utc::now();
        assert!(
            lead > chrono::Duration::seconds(110) && lead <= chrono::Duration::seconds(120),
            "{lead}"
        );
        let (_, answer) = get(&emulator, paths::REBALANCE, Some(&token));
        assert!(body(&answer).starts_with(r#"{"noticeTime":""#), "{answer}");
        let (_, answer) = get(&emulator, paths::SCHEDULED_EVENTS, Some(&token));
        let events: Vec<ScheduledEvent> = serde_json::from_str(body(&answer)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].code.as_str(), events[0].state.as_str()),
            ("system-reboot", "active")
        );
        assert!(events[0].event_id.starts_with("instance-event-"));
        assert!(events[0].not_before_time().unwrap() > Utc::now());

        trigger(&endpoint, Trigger::Reset).unwrap();
        assert_eq!(
            get(&emulator, paths::SPOT_INSTANCE_ACTION, Some(&token)).0,
            404
        );
        assert_eq!(
            body(&get(&emulator, paths::SCHEDULED_EVENTS, Some(&token)).1),
            NO_SCHEDULED_EVENTS
        );
    }

    #[test]
    fn role_credentials_and_user_data_need_a_token_and_are_served_as_ec2_does() {
        let emulator = emulator();
        let (_, answer) = put_token(&emulator, Some("60"));
        let token = body(&answer).to_owned();
        assert_eq!(get(&emulator, CREDENTIALS_PATH, Some(&token)).0, 404, "no instance profile yet");
        assert_eq!(get(&emulator, USER_DATA_PATH, Some(&token)).0, 404);
        let credentials = RoleCredentials {
            access_key_id: "ASIATEST".into(),
            secret_access_key: "secret".into(),
            token: "session".into(),
        };
        emulator.set_role_credentials("fleetform-c-worker", credentials);
        emulator.set_user_data("#cloud-config\n");
        assert_eq!(get(&emulator, CREDENTIALS_PATH, None).0, 401);
        let (status, answer) = get(&emulator, CREDENTIALS_PATH, Some(&token));
        assert_eq!((status, body(&answer)), (200, "fleetform-c-worker"));
        let (status, answer) = get(&emulator, &format!("{CREDENTIALS_PATH}fleetform-c-worker"), Some(&token));
        assert_eq!(status, 200);
        let doc: serde_json::Value = serde_json::from_str(body(&answer)).unwrap();
        assert_eq!((doc["Code"].as_str(), doc["AccessKeyId"].as_str(), doc["Token"].as_str()), (Some("Success"), Some("ASIATEST"), Some("session")));
        let expires: DateTime<Utc> = doc["Expiration"].as_str().unwrap().parse().unwrap();
        assert!(expires > Utc::now() + chrono::Duration::hours(5), "{expires}");
        assert_eq!(get(&emulator, &format!("{CREDENTIALS_PATH}other-role"), Some(&token)).0, 404);
        let (status, answer) = get(&emulator, USER_DATA_PATH, Some(&token));
        assert_eq!((status, body(&answer)), (200, "#cloud-config\n"));
    }

    #[test]
    fn bad_triggers_are_reported() {
        let emulator = emulator();
        let endpoint = emulator.endpoint();
        let err = trigger(
            &endpoint,
            Trigger::SpotInterruption {
                action: "explode".into(),
                after: Duration::ZERO,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("400"), "{err}");
        // An absurd lead time saturates instead of killing the server thread.
        trigger(
            &endpoint,
            Trigger::ScheduledEvent {
                code: "system-reboot".into(),
                after: Duration::MAX,
            },
        )
        .unwrap();
        trigger(&endpoint.replace("127.0.0.1", "localhost"), Trigger::Reset).unwrap();
        let (status, _) = raw(
            &emulator,
            "GET /fleetform/reset HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 405);
        let (status, _) = raw(&emulator, "POST /fleetform/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        assert_eq!(status, 404);
    }

    #[test]
    fn trigger_refuses_other_hosts_and_schemes() {
        let err = trigger("https://127.0.0.1:1", Trigger::Reset).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = trigger("http://192.0.2.1:80", Trigger::Reset).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn drop_stops_the_server() {
        let emulator = emulator();
        let endpoint = emulator.endpoint();
        trigger(&endpoint, Trigger::Reset).unwrap();
        let started = Instant::now();
        drop(emulator);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "drop must not hang"
        );
        // tiny_http closes its listener just after the server is dropped.
        let closed = (0..20).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            trigger(&endpoint, Trigger::Reset).is_err()
        });
        assert!(closed, "the emulator still answers after drop");
    }
}
