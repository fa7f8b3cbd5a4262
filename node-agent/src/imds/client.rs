//! [`ImdsClient`]: IMDSv2 reads for the agent, in the manner of Bottlerocket's
//! `imdsclient`: a session token from `PUT /latest/api/token`, cached until shortly before
//! its TTL and sent on every GET, over hyper (HTTP/1.1, one connection per request: IMDS is
//! a link-local endpoint answering from memory). What a daemon needs on top:
//! - **404 is "absent", not a failure**: `spot/instance-action` is 404 until EC2 decides to
//!   interrupt the instance, so [`ImdsClient::get`] returns `Ok(None)`.
//! - **401 drops the token**: a fresh token is fetched and the read tried once more.
//!   (aws-config's IMDS client, which this replaces, kept resending a rejected token until
//!   it neared its TTL.)
//! - **5xx and connection errors are retried** a few times within one read's deadline.
//! - **errors name the path**, and the timeouts are ours (see the constants).
//!
//! Why not aws-config's client: the agent of a local-only build (`--no-default-features`)
//! would compile the AWS SDK's runtime and TLS stack for two plain-HTTP requests.
use super::{headers, paths, Rebalance, ScheduledEvent, SpotAction};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Session token lifetime: the maximum IMDS grants (6 h), so tokens are rarely fetched.
pub const TOKEN_TTL: Duration = Duration::from_secs(21_600);

/// Renew a token this long before it expires (or at three quarters of a short TTL), so a
/// read never carries a token that dies in flight.
pub const TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(120);

/// IMDS is a link-local endpoint served by the Nitro card: a connection takes well under a
/// millisecond. Not connecting within a second means there is no IMDS to reach (not on
/// EC2, IMDS disabled, or a container behind a hop limit of 1); say so rather than wait.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// IMDS answers from memory in milliseconds; a second is generous.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// One read, retries and token included. The watcher polls every couple of seconds and a
/// spot notice leaves two minutes: a read stuck for 30 s would waste a quarter of them,
/// while a failed poll costs nothing because the next tick tries again.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts per request for retryable answers (5xx, connection errors): a transient IMDS
/// hiccup is absorbed within one poll, and three attempts with [`RETRY_BACKOFF`] fit
/// [`OPERATION_TIMEOUT`].
pub const MAX_ATTEMPTS: u32 = 3;

/// Wait before the second attempt; doubled before each later one.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// EC2's IMDS address, used when neither the caller nor the environment names another.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// The environment variable the AWS SDKs read for another IMDS endpoint.
pub const ENDPOINT_ENV: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";

/// Errors reading IMDS; each names the path it was reading.
#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error("invalid IMDS endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error(
        "could not get an IMDSv2 session token to read {path} (is IMDS enabled and reachable \
         from here, with a hop limit of 2 in containers?): {detail}"
    )]
    Token { path: String, detail: String },
    #[error("IMDS answered HTTP {status} for {path}")]
    Status { path: String, status: u16 },
    #[error("could not read {path} from IMDS: {detail}")]
    Unreachable { path: String, detail: String },
    #[error("IMDS has no {path} (404), which every instance should have")]
    Missing { path: String },
    #[error("IMDS document at {path} is not what EC2 documents: {source} (got {body:?})")]
    Parse {
        path: String,
        body: String,
        #[source]
        source: serde_json::Error,
    },
}

/// An IMDSv2 client. Cheap to clone; clones share the session token.
#[derive(Clone, Debug)]
pub struct ImdsClient {
    /// `host:port` of the endpoint.
    authority: Arc<str>,
    token_ttl: Duration,
    token: Arc<Mutex<Option<Token>>>,
}

#[derive(Debug)]
struct Token {
    value: String,
    renew_at: Instant,
}

/// A request's outcome below the IMDS semantics: a status and body, or why none came.
type Answer = Result<(u16, String), String>;

impl ImdsClient {
    /// A client for `endpoint` (e.g. an emulator's `http://127.0.0.1:PORT`), or, with
    /// `None`, for `AWS_EC2_METADATA_SERVICE_ENDPOINT` if set, else EC2's
    /// `http://169.254.169.254`.
    pub fn new(endpoint: Option<&str>) -> Result<Self, ImdsError> {
        Self::with_token_ttl(endpoint, TOKEN_TTL)
    }

    /// [`ImdsClient::new`] asking for tokens that live `token_ttl` (whole seconds, 1 s to
    /// 6 h) instead of [`TOKEN_TTL`]; tests use 1 s to exercise expiry.
    pub fn with_token_ttl(endpoint: Option<&str>, token_ttl: Duration) -> Result<Self, ImdsError> {
        let endpoint = match endpoint {
            Some(e) => e.to_owned(),
            None => std::env::var(ENDPOINT_ENV).unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned()),
        };
        Ok(ImdsClient { authority: authority(&endpoint)?.into(), token_ttl, token: Arc::new(Mutex::new(None)) })
    }

    /// Reads `path` (e.g. `/latest/meta-data/spot/instance-action`); `Ok(None)` when IMDS
    /// answers 404, which for notices means "none".
    pub async fn get(&self, path: &str) -> Result<Option<String>, ImdsError> {
        match tokio::time::timeout(OPERATION_TIMEOUT, self.get_once_renewing(path)).await {
            Ok(result) => result,
            Err(_) => Err(ImdsError::Unreachable { path: path.to_owned(), detail: format!("no answer within {OPERATION_TIMEOUT:?}") }),
        }
    }

    /// A GET with the cached token; on a 401, one more with a fresh token.
    async fn get_once_renewing(&self, path: &str) -> Result<Option<String>, ImdsError> {
        let token = self.token(path, false).await?;
        match self.fetch(path, &token).await {
            Err(ImdsError::Status { status: 401, .. }) => {
                tracing::debug!(path, "IMDS answered 401: fetching a new session token");
                let token = self.token(path, true).await?;
                self.fetch(path, &token).await
            }
            other => other,
        }
    }

    async fn fetch(&self, path: &str, token: &str) -> Result<Option<String>, ImdsError> {
        match self.send(Method::GET, path, headers::TOKEN, token).await {
            Ok((200, body)) => Ok(Some(body)),
            Ok((404, _)) => Ok(None),
            Ok((status, _)) => Err(ImdsError::Status { path: path.to_owned(), status }),
            Err(detail) => Err(ImdsError::Unreachable { path: path.to_owned(), detail }),
        }
    }

    /// The cached session token, or a new one when it nears expiry, was rejected
    /// (`renew`), or there is none yet. Clones share it, so one PUT serves them all.
    async fn token(&self, path: &str, renew: bool) -> Result<String, ImdsError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| !renew && Instant::now() < t.renew_at) {
            return Ok(t.value.clone());
        }
        let ttl = self.token_ttl.as_secs().to_string();
        let value = match self.send(Method::PUT, paths::TOKEN, headers::TOKEN_TTL_SECONDS, &ttl).await {
            Ok((200, body)) => body,
            Ok((status, body)) => return Err(ImdsError::Token { path: path.to_owned(), detail: format!("HTTP {status} {}", body.trim()) }),
            Err(detail) => return Err(ImdsError::Token { path: path.to_owned(), detail }),
        };
        let margin = TOKEN_RENEW_BEFORE.min(self.token_ttl / 4);
        *cached = Some(Token { value: value.clone(), renew_at: Instant::now() + self.token_ttl - margin });
        Ok(value)
    }

    /// One request with retries on 5xx answers and connection errors.
    async fn send(&self, method: Method, path: &str, header: &str, value: &str) -> Answer {
        let mut backoff = RETRY_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let answer = self.send_once(method.clone(), path, header, value).await;
            let retryable = match &answer {
                Ok((status, _)) => *status >= 500,
                Err(_) => true,
            };
            if !retryable || attempt == MAX_ATTEMPTS {
                return answer;
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        unreachable!("the last attempt returns")
    }

    async fn send_once(&self, method: Method, path: &str, header: &str, value: &str) -> Answer {
        let connect = tokio::net::TcpStream::connect(&*self.authority);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("cannot connect to {}: {e}", self.authority)),
            Err(_) => return Err(format!("no connection to {} within {CONNECT_TIMEOUT:?}", self.authority)),
        };
        let exchange = async {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            // Drives the connection; ends when `sender` is dropped at the end of the exchange.
            tokio::spawn(connection);
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, &*self.authority)
                .header(header, value)
                .body(Empty::<Bytes>::new())
                .expect("IMDS paths and header values are valid HTTP");
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        match tokio::time::timeout(READ_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("HTTP exchange with {} failed: {e}", self.authority)),
            Err(_) => Err(format!("no answer from {} within {READ_TIMEOUT:?}", self.authority)),
        }
    }

    /// The spot interruption notice, if EC2 has issued one.
    pub async fn spot_instance_action(&self) -> Result<Option<SpotAction>, ImdsError> {
        self.get_json(paths::SPOT_INSTANCE_ACTION).await
    }

    /// The rebalance recommendation, if EC2 has issued one.
    pub async fn rebalance_recommendation(&self) -> Result<Option<Rebalance>, ImdsError> {
        self.get_json(paths::REBALANCE).await
    }

    /// Scheduled maintenance events; empty when there are none. Real IMDS answers `[]`
    /// then; a 404 or an empty body is read the same way.
    pub async fn scheduled_events(&self) -> Result<Vec<ScheduledEvent>, ImdsError> {
        let path = paths::SCHEDULED_EVENTS;
        match self.get(path).await? {
            Some(body) if !body.trim().is_empty() => parse(path, body),
            _ => Ok(Vec::new()),
        }
    }

    pub async fn instance_id(&self) -> Result<String, ImdsError> {
        self.get_required(paths::INSTANCE_ID).await
    }

    pub async fn instance_type(&self) -> Result<String, ImdsError> {
        self.get_required(paths::INSTANCE_TYPE).await
    }

    pub async fn availability_zone(&self) -> Result<String, ImdsError> {
        self.get_required(paths::AVAILABILITY_ZONE).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ImdsError> {
        self.get(path).await?.map(|body| parse(path, body)).transpose()
    }

    async fn get_required(&self, path: &str) -> Result<String, ImdsError> {
        let value = self.get(path).await?.ok_or_else(|| ImdsError::Missing { path: path.to_owned() })?;
        Ok(value.trim().to_owned())
    }
}

/// `host:port` of an `http://host[:port][/]` endpoint. IMDS is plain HTTP on a link-local
/// address; anything else is a mistake worth naming.
fn authority(endpoint: &str) -> Result<String, ImdsError> {
    let invalid = |reason: &str| ImdsError::Endpoint { endpoint: endpoint.to_owned(), reason: reason.to_owned() };
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| invalid("expected http://host[:port] (IMDS is plain HTTP)"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(invalid("expected http://host[:port] without a path"));
    }
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !host.ends_with(']');
    Ok(if has_port { host.to_owned() } else { format!("{host}:80") })
}

fn parse<T: DeserializeOwned>(path: &str, body: String) -> Result<T, ImdsError> {
    serde_json::from_str(&body).map_err(|source| ImdsError::Parse { path: path.to_owned(), body, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use fleetform_testkit::imds::ImdsEmulator;

    const INSTANCE_ID: &str = "i-0123456789abcdef0";

    fn emulator() -> ImdsEmulator {
        ImdsEmulator::start(INSTANCE_ID, "c7i.2xlarge", "us-west-2c").unwrap()
    }

    fn client(emulator: &ImdsEmulator) -> ImdsClient {
        ImdsClient::new(Some(&emulator.endpoint())).unwrap()
    }

    #[tokio::test]
    async fn reads_the_instance_identity() {
        let emulator = emulator();
        let client = client(&emulator);
        assert_eq!(client.instance_id().await.unwrap(), INSTANCE_ID);
        assert_eq!(client.instance_type().await.unwrap(), "c7i.2xlarge");
        assert_eq!(client.availability_zone().await.unwrap(), "us-west-2c");
        // One token PUT, then three GETs on the cached token.
        assert_eq!(emulator.requests(), 4);
    }

    #[tokio::test]
    async fn a_404_is_absent_not_an_error() {
        let emulator = emulator();
        let client = client(&emulator);
        assert_eq!(
            client.get("/latest/meta-data/no-such-thing").await.unwrap(),
            None
        );
        assert_eq!(client.spot_instance_action().await.unwrap(), None);
        assert_eq!(client.rebalance_recommendation().await.unwrap(), None);
        assert_eq!(client.scheduled_events().await.unwrap(), vec![]);
        let err = ImdsClient::new(Some(&emulator.endpoint()))
            .unwrap()
            .get_required("/latest/meta-data/no-such-thing")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("/latest/meta-data/no-such-thing"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn notices_round_trip_in_the_imds_shapes() {
        let emulator = emulator();
        let client = client(&emulator);
        emulator.raise_spot_action("hibernate", Duration::from_secs(120));
        emulator.raise_rebalance();
        emulator.schedule_event("instance-retirement", Duration::from_secs(7200));

        let spot = client
            .spot_instance_action()
            .await
            .unwrap()
            .expect("a notice");
        assert_eq!(spot.action, "hibernate");
        let lead = (spot.time - Utc::now()).num_seconds();
        assert!((110..=120).contains(&lead), "lead {lead}s");
        let raw = client
            .get(paths::SPOT_INSTANCE_ACTION)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(serde_json::from_str::<SpotAction>(&raw).unwrap(), spot);
        assert!(
            raw.starts_with(r#"{"action":"hibernate","time":""#) && raw.ends_with(r#"Z"}"#),
            "{raw}"
        );

        let rebalance = client
            .rebalance_recommendation()
            .await
            .unwrap()
            .expect("a recommendation");
        assert!((Utc::now() - rebalance.notice_time).num_seconds() < 5);

        let events = client.scheduled_events().await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].code, "instance-retirement");
        let lead = (events[0].not_before_time().unwrap() - Utc::now()).num_seconds();
        assert!((7190..=7200).contains(&lead), "lead {lead}s");
    }

    #[tokio::test]
    async fn a_401_fetches_a_new_token_and_retries_once() {
        let emulator = emulator();
        let client = client(&emulator);
        assert_eq!(client.instance_id().await.unwrap(), INSTANCE_ID);
        let before = emulator.requests();
        emulator.invalidate_tokens();
        assert_eq!(client.instance_id().await.unwrap(), INSTANCE_ID);
        // The rejected GET, a token PUT, the GET again: no retries (and no backoff) on the
        // dead token.
        assert_eq!(emulator.requests() - before, 3);
        // And the new token is cached for the clones too.
        let clone = client.clone();
        let before = emulator.requests();
        clone.availability_zone().await.unwrap();
        assert_eq!(emulator.requests() - before, 1);
    }

    #[tokio::test]
    async fn tokens_expire_and_are_renewed() {
        let emulator = emulator();
        let client =
            ImdsClient::with_token_ttl(Some(&emulator.endpoint()), Duration::from_secs(1)).unwrap();
        assert_eq!(client.instance_id().await.unwrap(), INSTANCE_ID);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // The first token has expired in the emulator (its own test checks the 401).
        assert_eq!(client.instance_id().await.unwrap(), INSTANCE_ID);
        assert_eq!(client.availability_zone().await.unwrap(), "us-west-2c");
    }

    #[tokio::test]
    async fn an_unreachable_imds_names_the_path() {
        let port = emulator().port(); // started and dropped: nothing listens there now
        let client = ImdsClient::new(Some(&format!("http://127.0.0.1:{port}"))).unwrap();
        let err = client.spot_instance_action().await.unwrap_err();
        assert!(matches!(err, ImdsError::Token { .. }), "{err:?}");
        assert!(
            err.to_string().contains(paths::SPOT_INSTANCE_ACTION),
            "{err}"
        );
    }

    #[test]
    fn endpoints_must_be_urls() {
        let err = ImdsClient::new(Some("127.0.0.1:80")).unwrap_err();
        assert!(matches!(err, ImdsError::Endpoint { .. }), "{err:?}");
    }
}
