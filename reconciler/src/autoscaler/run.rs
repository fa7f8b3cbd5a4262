//! The autoscaler loop, one for every [`NodeProvider`]: observe (nodes, heartbeats,
//! demand) → decide → execute, one round at a time; after a failed round the
//! [`error_policy`] records the error and picks the requeue. On AWS it runs as
//! `fleetform reconcile [--watch]` (the head's systemd unit, or cron); on the local
//! provider inside `fleetform up`, which owns the agent processes. The state between
//! rounds (capacity cache, history, the latest status and error) lives in the cluster
//! store, so one-shot passes from cron remember as much as the watch loop.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::task::{JobRecord, NodeHeartbeat};
use serde::{Deserialize, Serialize};

use super::policy::{error_policy, jitter, kind_of, FailureKind, RoundFailures};
use super::provider::{LaunchReport, NodeProvider};
use super::{
    decide, status, AutoscalerState, ClusterStatus, Decision, Demand, Launch, Observation,
};

/// How often `fleetform up` re-plans the local cluster: quick enough that a submitted
/// job gets agents within seconds, slow enough to cost nothing when idle.
pub const LOCAL_ROUND: Duration = Duration::from_secs(3);

/// What the store keeps between rounds, and what `fleetform status` shows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub state: AutoscalerState,
    pub status: Option<ClusterStatus>,
    /// Failed rounds since the last good one, and the latest error.
    #[serde(default)]
    pub failures: RoundFailures,
}

pub async fn load_state(store: &Store) -> Persisted {
    // A lost or unreadable state only costs the capacity cache and history: start fresh.
    store
        .get_json::<Persisted>(layout::autoscaler_state())
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Latest heartbeat of every node that has written one (read concurrently: on S3 each is
/// a GET, and a hundred of them one after the other would take seconds).
pub async fn heartbeats(store: &Store) -> Result<HashMap<String, NodeHeartbeat>> {
    let keys: Vec<String> = store
        .list(layout::nodes_prefix())
        .await?
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    let beats =
        futures::future::try_join_all(keys.iter().map(|k| store.get_json::<NodeHeartbeat>(k)))
            .await?;
    Ok(beats
        .into_iter()
        .flatten()
        .map(|hb| (hb.node_id.clone(), hb))
        .collect())
}

/// Demand per resource shape: for every unfinished job, its tasks not yet done or
/// failed; those held by a node (heartbeats) are in flight, the rest queued.
pub async fn demand(store: &Store, beats: &HashMap<String, NodeHeartbeat>) -> Result<Vec<Demand>> {
    let mut by_shape: Vec<Demand> = Vec::new();
    for key in store
        .list(layout::jobs_prefix())
        .await?
        .into_iter()
        .filter(|k| k.ends_with("/job.json"))
    {
        let Some(job) = store.get_json::<JobRecord>(&key).await? else {
            continue;
        };
        let id = &job.job_id;
        if store.exists(&layout::success(id)).await? || store.exists(&layout::cancel(id)).await? {
            continue;
        }
        let finished = store.list(&layout::done_prefix(id)).await?.len()
            + store.list(&layout::failed_prefix(id)).await?.len();
        let remaining = job.tasks.saturating_sub(finished) as u64;
        let prefix = format!("{id}/");
        let in_flight = beats
            .values()
            .filter(|h| !h.stopped)
            .map(|h| {
                h.tasks_in_flight
                    .iter()
                    .filter(|t| t.starts_with(&prefix))
                    .count() as u64
            })
            .sum::<u64>()
            .min(remaining);
        match by_shape
            .iter_mut()
            .find(|d| d.resources == job.spec.resources)
        {
            Some(d) => {
                d.queued += remaining - in_flight;
                d.in_flight += in_flight;
            }
            None => by_shape.push(Demand {
                resources: job.spec.resources.clone(),
                queued: remaining - in_flight,
                in_flight,
            }),
        }
    }
    Ok(by_shape)
}

/// Save what the rounds learnt. A failure to save is logged, not fatal: the next round
/// saves again, and a lost state costs only a few minutes of capacity cache.
pub async fn save_state(store: &Store, persisted: &Persisted) {
    if let Err(e) = store.put_json(layout::autoscaler_state(), persisted).await {
        tracing::warn!(
            "cannot save the autoscaler's state in {}: {}",
            store.uri(),
            crate::errors::render(&e)
        );
    }
}

/// A round that did not complete: the observation failed (`decision` is None, nothing was
/// done), or some actions of the decision failed (the others were done).
#[derive(Debug)]
pub struct RoundError {
    pub decision: Option<Decision>,
    pub failures: Vec<String>,
    /// The most severe kind among the failures: what the error policy acts on.
    pub kind: FailureKind,
}

impl fmt::Display for RoundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.failures.join("; "))
    }
}

impl std::error::Error for RoundError {}

impl From<anyhow::Error> for RoundError {
    fn from(e: anyhow::Error) -> Self {
        RoundError {
            decision: None,
            failures: vec![format!("observing the cluster: {}", crate::errors::render(&e))],
            kind: kind_of(&e),
        }
    }
}

/// One round: observe, decide, execute every action (one failing does not stop the
/// others), and set the status. The caller saves the state ([`pass`] does).
pub async fn round<P: NodeProvider>(
    provider: &P,
    store: &Store,
    persisted: &mut Persisted,
) -> Result<Decision, RoundError> {
    let spec = provider.spec();
    let beats = heartbeats(store).await?;
    let now = Utc::now();
    let obs = Observation {
        now,
        nodes: provider.observe(&beats).await?,
        demand: demand(store, &beats).await?,
    };
    let mut decision = decide(spec, &obs, &mut persisted.state);
    if provider.admit(&mut decision) {
        // What the provider held back is not remembered as decided.
        persisted.state.forget_since(now);
        for line in decision.decision_lines() {
            persisted.state.remember(now, line);
        }
    }
    persisted.state.number_launches(&mut decision.launches);
    let Failures { lines, kind } = execute(provider, store, &decision, &mut persisted.state, now).await;
    persisted.status = Some(status(spec, &obs, &persisted.state, &decision));
    if lines.is_empty() {
        Ok(decision)
    } else {
        Err(RoundError {
            decision: Some(decision),
            failures: lines,
            kind,
        })
    }
}

/// What failed while executing a decision, each line naming its action, and the most
/// severe kind among them.
#[derive(Default)]
struct Failures {
    lines: Vec<String>,
    kind: FailureKind,
}

impl Failures {
    fn push(&mut self, line: String, kind: FailureKind) {
        self.lines.push(line);
        self.kind = self.kind.max(kind);
    }
}

/// Execute a decision: launches, then drains (asked through the store: the agent takes no
/// new work), then terminations (the decision only terminates quiet nodes). Returns what
/// failed, each naming its action.
async fn execute<P: NodeProvider>(
    provider: &P,
    store: &Store,
    decision: &Decision,
    state: &mut AutoscalerState,
    now: DateTime<Utc>,
) -> Failures {
    let mut failures = Failures::default();
    for l in &decision.launches {
        match provider.launch(l).await {
            Ok(report) => {
                record_launch(state, l, &report, now);
                if let Some(e) = &report.error {
                    let line = format!("{l} failed after launching {}: {}", report.launched.len(), e.message);
                    state.remember(now, line.clone());
                    failures.push(line, e.kind);
                }
            }
            Err(e) => {
                let line = format!("{l} failed: {}", crate::errors::render(&e));
                state.remember(now, line.clone());
                failures.push(line, kind_of(&e));
            }
        }
    }
    for d in &decision.drains {
        if let Err(e) = store
            .put_json(
                &layout::node_drain(&d.node_id),
                &serde_json::json!({"reason": d.reason, "at": now}),
            )
            .await
        {
            failures.push(format!("asking {} to drain: {}", d.node_id, crate::errors::render(&e)), kind_of(&e));
        }
    }
    let doomed: Vec<String> = decision
        .terminations
        .iter()
        .map(|t| t.node_id.clone())
        .collect();
    if !doomed.is_empty() {
        match provider.terminate(&doomed).await {
            Ok(()) => {
                for id in &doomed {
                    let _ = store.delete(&layout::node_drain(id)).await;
                }
            }
            Err(e) => failures.push(format!("terminating {}: {}", doomed.join(", "), crate::errors::render(&e)), kind_of(&e)),
        }
    }
    failures
}

/// Fold a launch's outcome into the state: the nodes really launched are counted, the
/// offerings that had no capacity are cached (persisted with the state, so a one-shot
/// `fleetform reconcile` from cron skips them next minute too).
pub fn record_launch(
    state: &mut AutoscalerState,
    launch: &Launch,
    report: &LaunchReport,
    now: DateTime<Utc>,
) {
    for f in &report.failed {
        state.launch_failed(now, f.offering.clone(), f.error);
    }
    for n in &report.launched {
        state.count_launches(&launch.node_type, n.market, 1);
    }
    for m in &report.messages {
        state.remember(now, format!("{}: {m}", launch.node_type));
    }
}

/// The result of one [`pass`].
pub struct Pass {
    pub decision: Option<Decision>,
    /// Set when the round failed: the error policy's wait before the next round.
    pub retry_in: Option<Duration>,
    pub error: Option<RoundError>,
}

/// One round, the error policy when it failed, and the state saved either way: what
/// `fleetform reconcile` does once, and `--watch` in a loop.
pub async fn pass<P: NodeProvider>(provider: &P, store: &Store, persisted: &mut Persisted) -> Pass {
    let out = match round(provider, store, persisted).await {
        Ok(decision) => {
            persisted.failures.succeeded();
            Pass {
                decision: Some(decision),
                retry_in: None,
                error: None,
            }
        }
        Err(mut e) => {
            let err = anyhow::anyhow!("{e}");
            let wait = error_policy(&err, e.kind, &mut persisted.failures, Utc::now(), jitter());
            let decision = e.decision.take();
            Pass {
                decision,
                retry_in: Some(wait),
                error: Some(e),
            }
        }
    };
    save_state(store, persisted).await;
    out
}

/// Rounds for ever, `every` apart, or sooner or later after a failure as the error policy
/// says. `report` shows each round's decision; failures go to stderr. Never returns.
pub async fn watch<P: NodeProvider>(
    provider: &P,
    store: &Store,
    every: Duration,
    report: impl Fn(&Decision),
) {
    let mut persisted = load_state(store).await;
    loop {
        let p = pass(provider, store, &mut persisted).await;
        if let Some(d) = &p.decision {
            report(d);
        }
        if let (Some(e), Some(wait)) = (&p.error, p.retry_in) {
            eprintln!(
                "fleetform: autoscaler round failed: {e}; next round in {} s",
                wait.as_secs()
            );
        }
        tokio::time::sleep(p.retry_in.unwrap_or(every)).await;
    }
}
