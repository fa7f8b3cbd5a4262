//! [`ImdsClient`]: IMDSv2 reads for the agent, on top of `aws_config::imds::Client`.
//!
//! aws-config does the protocol: it PUTs for a session token, caches it until 120 s before
//! its TTL runs out, sends it on every GET, and retries 5xx answers with backoff. What it
//! leaves to us, in the manner of Bottlerocket's `imdsclient`:
//! - **404 is "absent", not a failure**: `spot/instance-action` is 404 until EC2 decides to
//!   interrupt the instance, so [`ImdsClient::get`] returns `Ok(None)`.
//! - **401 drops the token**: aws-config classifies a 401 as retryable but keeps the cached
//!   token, so every retry sends the same rejected token until its TTL (6 h) runs out. We
//!   stop it retrying 401s ([`NoRetryOn401`]), build a fresh inner client (an empty token
//!   cache) and try once more.
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
        let client = build(endpoint)?;
        Ok(ImdsClient {
            endpoint: endpoint.map(Arc::from),
            inner: Arc::new(RwLock::new(Inner { generation: 0, client })),
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
        self.get(path).await?.map(|body| parse(path, body)).transpose()
    }

    async fn get_required(&self, path: &str) -> Result<String, ImdsError> {
        let value = self.get(path).await?.ok_or_else(|| ImdsError::Missing { path: path.to_owned() })?;
        Ok(value.trim().to_owned())
    }

    fn current(&self) -> (u64, aws_config::imds::Client) {
        let inner = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        (inner.generation, inner.client.clone())
    }

    /// Replaces the inner client (and with it the token cache) unless another read already
    /// did since `seen`.
    fn renew(&self, seen: u64) -> Result<aws_config::imds::Client, ImdsError> {
        let mut inner = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if inner.generation == seen {
            inner.client = build(self.endpoint.as_deref())?;
            inner.generation += 1;
        }
        Ok(inner.client.clone())
    }
}

fn build(endpoint: Option<&str>) -> Result<aws_config::imds::Client, ImdsError> {
    let builder = aws_config::imds::Client::builder()
        .token_ttl(TOKEN_TTL)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .max_attempts(MAX_ATTEMPTS)
        .retry_classifier(SharedRetryClassifier::new(NoRetryOn401::default()));
    let builder = match endpoint {
        None => builder,
        Some(endpoint) => {
            let invalid = |reason: String| ImdsError::Endpoint { endpoint: endpoint.to_owned(), reason };
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid("expected http://host:port".to_owned()));
            }
            builder.endpoint(endpoint).map_err(|err| invalid(err.to_string()))?
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
            status => Err(ImdsError::Status { path: path_owned(), status }),
        },
        Err(err @ SdkImdsError::FailedToLoadToken(_)) => {
            Err(ImdsError::Token { path: path_owned(), detail: chain(&err) })
        }
        Err(err) => Err(ImdsError::Unreachable { path: path_owned(), detail: chain(&err) }),
    }
}

fn parse<T: DeserializeOwned>(path: &str, body: String) -> Result<T, ImdsError> {
    serde_json::from_str(&body).map_err(|source| ImdsError::Parse { path: path.to_owned(), body, source })
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
mod tests;
