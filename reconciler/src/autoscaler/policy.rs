//! What happens after a failed round, kube-rs style (`error_policy` in
//! kube-runtime's controller): a synchronous, infallible policy records the error where
//! `fleetform status` and the dashboard read it, and picks when to try again, with
//! exponential backoff and jitter, capped. No error ends `fleetform reconcile --watch`.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The first retry after a failed round. Most failures are a throttled or briefly
/// unreachable API; five seconds is past a blip without hammering it.
pub const REQUEUE_BASE: Duration = Duration::from_secs(5);

/// The longest wait between failing rounds: an error that persists (a deleted launch
/// template, revoked permissions) is retried every few minutes, so the cluster recovers
/// on its own soon after the operator fixes it.
pub const REQUEUE_CAP: Duration = Duration::from_secs(300);

/// What a failure says about retrying, decided where the error is still typed (an
/// `AwsError`, see [`kind_of`]): the policy waits accordingly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FailureKind {
    /// A blip (unreachable, a 5xx, a refused request that may pass next time): the
    /// usual backoff.
    #[default]
    Transient,
    /// AWS kept throttling although the SDK already retried with backoff: start the
    /// backoff further up instead of adding load.
    Throttled,
    /// Only a person can fix it (access denied, bad credentials, a missing service-linked
    /// role): retrying sooner changes nothing, so the loop waits the longest and says so.
    NeedsOperator,
}

/// The kind of the first typed error in `err`'s chain; [`FailureKind::Transient`] when
/// nothing in it says otherwise.
pub fn kind_of(err: &anyhow::Error) -> FailureKind {
    #[cfg(feature = "aws")]
    for cause in err.chain() {
        if let Some(aws) = cause.downcast_ref::<crate::aws::errors::AwsError>() {
            return match (aws.needs_operator(), aws.is_throttled()) {
                (true, _) => FailureKind::NeedsOperator,
                (_, true) => FailureKind::Throttled,
                _ => FailureKind::Transient,
            };
        }
    }
    let _ = err;
    FailureKind::Transient
}

/// The latest failed round, as `fleetform status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundError {
    pub at: DateTime<Utc>,
    pub message: String,
    /// When the loop tries again (a `reconcile --watch`; cron keeps its own schedule).
    pub retry_at: DateTime<Utc>,
}

/// Failed rounds since the last one that succeeded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundFailures {
    pub consecutive: u32,
    pub last: Option<RoundError>,
}

impl RoundFailures {
    /// A round succeeded: the backoff starts again from [`REQUEUE_BASE`].
    pub fn succeeded(&mut self) {
        *self = RoundFailures::default();
    }
}

/// Record `err` (of `kind`) and return how long to wait before the next round. `jitter`
/// in [0, 1) spreads the retries of many clusters (pass [`jitter`]; tests pass fixed
/// values).
pub fn error_policy(
    err: &anyhow::Error,
    kind: FailureKind,
    failures: &mut RoundFailures,
    now: DateTime<Utc>,
    jitter: f64,
) -> Duration {
    failures.consecutive = failures.consecutive.saturating_add(1);
    let (wait, note) = match kind {
        FailureKind::Transient => (backoff(failures.consecutive, jitter), ""),
        FailureKind::Throttled => (backoff(failures.consecutive.saturating_add(THROTTLED_HEAD_START), jitter), ""),
        FailureKind::NeedsOperator => (
            REQUEUE_CAP,
            " (only a change of permissions or account settings fixes this: retrying every 5 minutes until then)",
        ),
    };
    let retry_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
    failures.last = Some(RoundError {
        at: now,
        message: format!("{}{note}", crate::errors::render(err)),
        retry_at,
    });
    wait
}

/// A throttled round starts its backoff this many doublings up (20 s, not 5 s): the SDK
/// has already retried it with backoff, and the account's API budget is shared.
const THROTTLED_HEAD_START: u32 = 2;

/// The wait after `failures` consecutive failures: [`REQUEUE_BASE`] doubled per failure,
/// at most [`REQUEUE_CAP`], then "equal jitter" (half fixed, half random) so the wait is
/// never below half the exponential one yet never synchronised.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let exponential = REQUEUE_BASE
        .saturating_mul(1u32 << doublings)
        .min(REQUEUE_CAP);
    let half = exponential / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A fresh number in [0, 1): the standard library's randomly keyed hasher is random
/// enough to spread retries, and needs no dependency.
pub fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let fixed = |n| backoff(n, 1.0);
        assert_eq!(fixed(1), REQUEUE_BASE);
        assert_eq!(fixed(2), REQUEUE_BASE * 2);
        assert_eq!(fixed(3), REQUEUE_BASE * 4);
        assert_eq!(fixed(7), REQUEUE_CAP, "5 s x 64 = 320 s, capped at 300 s");
        assert_eq!(fixed(1000), REQUEUE_CAP);
        assert_eq!(fixed(u32::MAX), REQUEUE_CAP);
    }

    #[test]
    fn jitter_spreads_within_half_and_full() {
        assert_eq!(backoff(3, 0.0), REQUEUE_BASE * 2, "half of 20 s");
        assert_eq!(backoff(3, 0.5), REQUEUE_BASE * 3);
        assert_eq!(backoff(20, 0.0), REQUEUE_CAP / 2);
        let waits: Vec<Duration> = (0..50).map(|_| backoff(20, jitter())).collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= REQUEUE_CAP / 2 && *w <= REQUEUE_CAP),
            "{waits:?}"
        );
        assert!(waits.iter().any(|w| *w != waits[0]), "jittered: {waits:?}");
    }

    #[test]
    fn the_policy_records_the_error_and_success_resets_it() {
        let now = Utc::now();
        let mut f = RoundFailures::default();
        let e = anyhow::anyhow!("ec2:CreateFleet failed").context("launch 2 x86");
        let first = error_policy(&e, FailureKind::Transient, &mut f, now, 1.0);
        let second = error_policy(&e, FailureKind::Transient, &mut f, now, 1.0);
        assert_eq!((first, second), (REQUEUE_BASE, REQUEUE_BASE * 2));
        let last = f.last.clone().unwrap();
        assert_eq!(
            (f.consecutive, last.message.as_str()),
            (2, "launch 2 x86: ec2:CreateFleet failed")
        );
        assert_eq!(last.retry_at, now + chrono::Duration::seconds(10));
        f.succeeded();
        assert_eq!(f, RoundFailures::default());
        assert_eq!(error_policy(&e, FailureKind::Transient, &mut f, now, 1.0), REQUEUE_BASE);
    }

    #[test]
    fn denied_waits_the_longest_and_says_why_throttled_starts_higher() {
        let now = Utc::now();
        let mut f = RoundFailures::default();
        let e = anyhow::anyhow!("access denied: allow `ec2:CreateFleet`");
        assert_eq!(error_policy(&e, FailureKind::NeedsOperator, &mut f, now, 0.0), REQUEUE_CAP, "no jitter below the cap either");
        let message = f.last.clone().unwrap().message;
        assert!(message.ends_with("only a change of permissions or account settings fixes this: retrying every 5 minutes until then)"), "{message}");
        let mut f = RoundFailures::default();
        let throttled = error_policy(&e, FailureKind::Throttled, &mut f, now, 1.0);
        assert_eq!(throttled, REQUEUE_BASE * 4, "the first throttled round waits as a third failure would");
    }
}
