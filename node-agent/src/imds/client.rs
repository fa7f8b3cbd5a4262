//! [`ImdsClient`]: IMDSv2 reads for the agent, on top of `aws_config::imds::Client`.
//!
//! aws-config does the protocol: it PUTs for a session token, caches it until 120 s before
//! its TTL runs out, sends it on every GET, and retries 5xx answers with backoff. What it
//! leaves to us, in the manner of Bottlerocket's `imdsclient`:
//! - **404 is "absent", not a failure**: `spot/instance-action` is 404 until EC2 decides to
//!   interrupt the instance, so [`ImdsClient::get`] returns `Ok(None)`.
//! - **401 drops the token**: aws-config classifies a 401 as retryable but never clears its
//!   token cache, so its retries resend the rejected token, and later reads keep failing
//!   until the token nears its TTL (6 h). We stop it retrying 401s (`NoRetryOn401`), build
//!   a fresh inner client (an empty token cache) and try once more.
//! - **errors name the path**, and the timeouts are ours (see the constants).
use super::{paths, Rebalance, ScheduledEvent, SpotAction};
use aws_config::imds::client::error::ImdsError as SdkImdsError;
use aws_config::imds::client::ImdsResponseRetryClassifier;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, SharedRetryClassifier,
};
use serde::de::DeserializeOwned;
use std::error::Error as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Session token lifetime: the maximum IMDS grants (6 h). aws-config renews the token
/// 120 s before it expires, so a longer TTL only means fewer token PUTs.
pub const TOKEN_TTL: Duration = Duration::from_secs(21_600);

/// IMDS is a link-local endpoint served by the Nitro card: a connection takes well under a
/// millisecond. Not connecting within a second means there is no IMDS to reach (not on
/// EC2, IMDS disabled, or a container behind a hop limit of 1); say so rather than wait.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// IMDS answers from memory in milliseconds; a second is generous.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// One attempt (token PUT included): connect plus read, with room to spare.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// One read, retries included. The watcher polls every couple of seconds and a spot notice
/// leaves two minutes: a read stuck for aws-config's default 30 s would waste a quarter of
/// them, while a failed poll costs nothing because the next tick tries again.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts per read for retryable answers (5xx): a transient IMDS hiccup is absorbed
/// within one poll, and three attempts with aws-config's backoff fit [`OPERATION_TIMEOUT`].
pub const MAX_ATTEMPTS: u32 = 3;

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
    endpoint: Option<Arc<str>>,
    token_ttl: Duration,
    inner: Arc<RwLock<Inner>>,
}

/// The aws-config client and how many times it was rebuilt, so that two reads failing with
/// 401 together rebuild it once.
#[derive(Debug)]
struct Inner {
    generation: u64,
    client: aws_config::imds::Client,
}

impl ImdsClient {
    /// A client for `endpoint` (e.g. an emulator's `http://127.0.0.1:PORT`), or, with
    /// `None`, for the endpoint aws-config resolves: `AWS_EC2_METADATA_SERVICE_ENDPOINT`,
    /// then `ec2_metadata_service_endpoint` in the AWS config file, then EC2's
    /// `http://169.254.169.254`. Resolution happens on the first read.
    pub fn new(endpoint: Option<&str>) -> Result<Self, ImdsError> {
        Self::with_token_ttl(endpoint, TOKEN_TTL)
    }

    /// [`ImdsClient::new`] asking for tokens that live `token_ttl` (whole seconds, 1 s to
    /// 6 h) instead of [`TOKEN_TTL`]; tests use 1 s to exercise expiry.
    pub fn with_token_ttl(endpoint: Option<&str>, token_ttl: Duration) -> Result<Self, ImdsError> {
        let client = build(endpoint, token_ttl)?;
        Ok(ImdsClient {
            endpoint: endpoint.map(Arc::from),
            token_ttl,
            inner: Arc::new(RwLock::new(Inner {
                generation: 0,
                client,
            })),
        })
    }

    /// Reads `path` (e.g. `/latest/meta-data/spot/instance-action`); `Ok(None)` when IMDS
    /// answers 404, which for notices means "none".
    pub async fn get(&self, path: &str) -> Result<Option<String>, ImdsError> {
        let (generation, client) = self.current();
        match fetch(&client, path).await {
            Err(ImdsError::Status { status: 401, .. }) => {
                tracing::debug!(path, "IMDS answered 401: fetching a new session token");
                let client = self.renew(generation)?;
                fetch(&client, path).await
            }
            other => other,
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
        self.get(path)
            .await?
            .map(|body| parse(path, body))
            .transpose()
    }

    async fn get_required(&self, path: &str) -> Result<String, ImdsError> {
        let value = self.get(path).await?.ok_or_else(|| ImdsError::Missing {
            path: path.to_owned(),
        })?;
        Ok(value.trim().to_owned())
    }

    fn current(&self) -> (u64, aws_config::imds::Client) {
        let inner = self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (inner.generation, inner.client.clone())
    }

    /// Replaces the inner client (and with it the token cache) unless another read already
    /// did since `seen`.
    fn renew(&self, seen: u64) -> Result<aws_config::imds::Client, ImdsError> {
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if inner.generation == seen {
            inner.client = build(self.endpoint.as_deref(), self.token_ttl)?;
            inner.generation += 1;
        }
        Ok(inner.client.clone())
    }
}

fn build(
    endpoint: Option<&str>,
    token_ttl: Duration,
) -> Result<aws_config::imds::Client, ImdsError> {
    let builder = aws_config::imds::Client::builder()
        .token_ttl(token_ttl)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .max_attempts(MAX_ATTEMPTS)
        .retry_classifier(SharedRetryClassifier::new(NoRetryOn401::default()));
    let builder = match endpoint {
        None => builder,
        Some(endpoint) => {
            let invalid = |reason: String| ImdsError::Endpoint {
                endpoint: endpoint.to_owned(),
                reason,
            };
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid("expected http://host:port".to_owned()));
            }
            builder
                .endpoint(endpoint)
                .map_err(|err| invalid(err.to_string()))?
        }
    };
    Ok(builder.build())
}

async fn fetch(client: &aws_config::imds::Client, path: &str) -> Result<Option<String>, ImdsError> {
    let path_owned = || path.to_owned();
    match client.get(path).await {
        Ok(body) => Ok(Some(body.into())),
        Err(SdkImdsError::ErrorResponse(answer)) => match answer.response().status().as_u16() {
            404 => Ok(None),
            status => Err(ImdsError::Status {
                path: path_owned(),
                status,
            }),
        },
        Err(err @ SdkImdsError::FailedToLoadToken(_)) => Err(ImdsError::Token {
            path: path_owned(),
            detail: chain(&err),
        }),
        Err(err) => Err(ImdsError::Unreachable {
            path: path_owned(),
            detail: chain(&err),
        }),
    }
}

fn parse<T: DeserializeOwned>(path: &str, body: String) -> Result<T, ImdsError> {
    serde_json::from_str(&body).map_err(|source| ImdsError::Parse {
        path: path.to_owned(),
        body,
        source,
    })
}

/// An error and its causes on one line: aws-config's top-level messages ("failed to load
/// IMDS session token") hide the useful part (connection refused, timeout) in the chain.
fn chain(err: &SdkImdsError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// aws-config's IMDS retry policy (5xx retried; 400, 403, 404 not) minus its retry of 401:
/// aws-config keeps the rejected token cached, so its retries resend the same token and fail
/// the same way, slowly. [`ImdsClient::get`] renews the token instead.
#[derive(Debug, Default)]
struct NoRetryOn401 {
    base: ImdsResponseRetryClassifier,
}

impl ClassifyRetry for NoRetryOn401 {
    fn name(&self) -> &'static str {
        "fleetform::NoRetryOn401"
    }

    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response().map(|response| response.status().as_u16()) {
            Some(401) => RetryAction::NoActionIndicated,
            _ => self.base.classify_retry(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imds::ImdsEmulator;
    use chrono::Utc;
    use std::time::Instant;

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

    /// What aws-config (1.13) does on its own when a cached token is rejected, kept as a
    /// record of why [`NoRetryOn401`] and [`ImdsClient::renew`] exist: it retries with the
    /// same token, with backoff (about 2 s here), and gives up with the 401. If a later
    /// aws-config renews the token itself, this test fails and the workaround can go.
    #[tokio::test]
    async fn aws_config_alone_retries_401_with_the_same_token() {
        let emulator = emulator();
        let sdk = aws_config::imds::Client::builder()
            .endpoint(emulator.endpoint())
            .unwrap()
            .max_attempts(MAX_ATTEMPTS)
            .build();
        sdk.get(paths::INSTANCE_ID).await.unwrap();
        let before = emulator.requests();
        emulator.invalidate_tokens();
        let started = Instant::now();
        let err = sdk.get(paths::INSTANCE_ID).await.unwrap_err();
        eprintln!(
            "aws-config alone: {} requests in {:?}: {err}",
            emulator.requests() - before,
            started.elapsed()
        );
        assert!(
            matches!(&err, SdkImdsError::ErrorResponse(r) if r.response().status().as_u16() == 401)
        );
        assert_eq!(
            emulator.requests() - before,
            u64::from(MAX_ATTEMPTS),
            "no new token was fetched"
        );
    }
}
