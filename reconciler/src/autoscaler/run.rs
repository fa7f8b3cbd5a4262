//! The autoscaler wired to its providers: observe (nodes, heartbeats, demand) → decide →
//! execute, one round at a time. On AWS it runs as `fleetform reconcile [--watch]` (the
//! head's systemd unit, or cron); on the local provider inside `fleetform up`, which owns
//! the agent processes. The state between rounds (capacity cache, history, the latest
//! status) lives in the cluster store, so one-shot passes from cron remember as much as
//! the watch loop.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use fleetform_agent::store::Store;
use fleetform_core::layout;
use fleetform_core::spec::{ClusterSpec, Market, ProviderKind};
use fleetform_core::task::{JobRecord, NodeHeartbeat};
use serde::{Deserialize, Serialize};

use super::{decide, status, AutoscalerState, ClusterStatus, Decision, Demand, NodeState, Observation, ObservedNode};
#[cfg(feature = "aws")]
use super::{CapacityError, Offering};
use crate::cluster;
#[cfg(feature = "aws")]
use crate::cluster::Handles;
#[cfg(feature = "aws")]
use fleetform_agent::queue::Queue;
use crate::local::LocalCluster;

/// How often `fleetform up` re-plans the local cluster: quick enough that a submitted
/// job gets agents within seconds, slow enough to cost nothing when idle.
pub const LOCAL_ROUND: Duration = Duration::from_secs(3);

/// What the store keeps between rounds, and what `fleetform status` shows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub state: AutoscalerState,
    pub status: Option<ClusterStatus>,
}

pub async fn load_state(store: &Store) -> Persisted {
    // A lost or unreadable state only costs the capacity cache and history: start fresh.
    store.get_json::<Persisted>(layout::autoscaler_state()).await.ok().flatten().unwrap_or_default()
}

/// Latest heartbeat of every node that has written one (read concurrently: on S3 each is
/// a GET, and a hundred of them one after the other would take seconds).
pub async fn heartbeats(store: &Store) -> Result<HashMap<String, NodeHeartbeat>> {
    let keys: Vec<String> = store.list(layout::nodes_prefix()).await?.into_iter().filter(|k| k.ends_with(".json")).collect();
    let beats = futures::future::try_join_all(keys.iter().map(|k| store.get_json::<NodeHeartbeat>(k))).await?;
    Ok(beats.into_iter().flatten().map(|hb| (hb.node_id.clone(), hb)).collect())
}

/// Demand per resource shape: for every unfinished job, its tasks not yet done or
/// failed; those held by a node (heartbeats) are in flight, the rest queued.
pub async fn demand(store: &Store, beats: &HashMap<String, NodeHeartbeat>) -> Result<Vec<Demand>> {
    let mut by_shape: Vec<Demand> = Vec::new();
    for key in store.list(layout::jobs_prefix()).await?.into_iter().filter(|k| k.ends_with("/job.json")) {
        let Some(job) = store.get_json::<JobRecord>(&key).await? else { continue };
        let id = &job.job_id;
        if store.exists(&layout::success(id)).await? || store.exists(&layout::cancel(id)).await? {
            continue;
        }
        let finished = store.list(&layout::done_prefix(id)).await?.len() + store.list(&layout::failed_prefix(id)).await?.len();
        let remaining = job.tasks.saturating_sub(finished) as u64;
        let prefix = format!("{id}/");
        let in_flight = beats
            .values()
            .filter(|h| !h.stopped)
            .map(|h| h.tasks_in_flight.iter().filter(|t| t.starts_with(&prefix)).count() as u64)
            .sum::<u64>()
            .min(remaining);
        match by_shape.iter_mut().find(|d| d.resources == job.spec.resources) {
            Some(d) => {
                d.queued += remaining - in_flight;
                d.in_flight += in_flight;
            }
            None => by_shape.push(Demand { resources: job.spec.resources.clone(), queued: remaining - in_flight, in_flight }),
        }
    }
    Ok(by_shape)
}

#[allow(clippy::too_many_arguments)] // one observed node, field by field
fn node_of(id: &str, node_type: &str, market: Market, instance_type: &str, zone: Option<String>, launched_at: DateTime<Utc>, pending: bool, beats: &HashMap<String, NodeHeartbeat>) -> ObservedNode {
    let heartbeat = beats.get(id).cloned();
    let state = if heartbeat.as_ref().is_some_and(|h| h.draining.is_some()) {
        NodeState::Draining
    } else if pending && heartbeat.is_none() {
        NodeState::Pending { since: launched_at }
    } else {
        NodeState::Running
    };
    ObservedNode { id: id.to_string(), node_type: node_type.to_string(), market, instance_type: instance_type.to_string(), zone, state, launched_at, heartbeat }
}

/// One round on the local provider. Launches are bounded by the machine: the agents'
/// slots together never exceed its cores (min_workers excepted).
pub async fn local_round(cluster: &LocalCluster, store: &Store, persisted: &mut Persisted) -> Result<Decision> {
    let spec = local_spec(cluster);
    let beats = heartbeats(store).await?;
    let now = Utc::now();
    let nodes: Vec<ObservedNode> = cluster
        .agents()
        .iter()
        .map(|a| node_of(&a.node_id, &a.node_type, Market::OnDemand, "local", None, a.launched_at, true, &beats))
        .collect();
    let obs = Observation { now, nodes, demand: demand(store, &beats).await? };
    let mut decision = decide(&spec, &obs, &mut persisted.state);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut held: Vec<(String, usize)> = Vec::new();
    let mut used: usize = cluster.agents().iter().map(|a| a.slots).sum();
    let mut rewritten: Vec<(String, String)> = Vec::new();
    for l in decision.launches.iter_mut() {
        let per = spec.available_node_types[&l.node_type].resources.cpu().max(1.0) as usize;
        let fits = (cores.saturating_sub(used) / per) as u32;
        let n = l.count.min(fits);
        if n < l.count {
            let before = l.to_string();
            let note = format!("{} of {} wanted: this machine has {cores} cores and agents use {used} slots", n, l.count);
            l.reason = format!("{}; {note}", l.reason);
            l.count = n;
            rewritten.push((before, if n > 0 { l.to_string() } else { format!("hold {}: {note}", l.node_type) }));
            let agents = cluster.agents().iter().filter(|a| a.node_type == l.node_type).count() + n as usize;
            held.push((l.node_type.clone(), agents));
        }
        if n > 0 {
            let launched = cluster.launch(&l.node_type, n)?;
            persisted.state.count_launches(&l.node_type, Market::OnDemand, launched.len() as u64);
            used += n as usize * per;
        }
    }
    name_the_machine(&mut decision.explanations, &held, cores);
    // What was not launched is not reported (or remembered) as launched.
    decision.launches.retain(|l| l.count > 0);
    for line in decision.explanations.iter_mut() {
        if let Some((_, after)) = rewritten.iter().find(|(before, _)| before == line) {
            *line = after.clone();
        }
    }
    while persisted.state.history.back().is_some_and(|h| h.at == now) {
        persisted.state.history.pop_back();
    }
    for line in decision.decision_lines() {
        persisted.state.remember(now, line);
    }
    execute_removals(store, &decision, |id| cluster.terminate(id)).await?;
    persisted.status = Some(status(&spec, &obs, &persisted.state, &decision));
    store.put_json(layout::autoscaler_state(), persisted).await?;
    Ok(decision)
}

/// The spec the local round plans with: the slots agents really get (a type without CPU
/// shares the cores). The plan itself stays the spec's (what AWS would launch); launches
/// this machine cannot host are held afterwards, and the reasons say so.
fn local_spec(cluster: &LocalCluster) -> ClusterSpec {
    let mut spec = cluster.spec().clone();
    let worker_names: Vec<String> = spec.worker_types().map(|(n, _)| n.clone()).collect();
    for name in worker_names {
        let t = spec.available_node_types.get_mut(&name).expect("listed above");
        t.resources = crate::local::local_resources(&t.resources, t.min_workers.max(1));
    }
    spec
}

/// A type whose launches the machine held: the plan's "tasks wait: T is at max_workers"
/// is true of the plan, but what holds those tasks now is the cores (issue 10: "wait:
/// worker is at max_workers 4" beside 2 running agents on a 2-core machine).
fn name_the_machine(lines: &mut [String], held: &[(String, usize)], cores: usize) {
    for (node_type, agents) in held {
        let at_max = format!("{node_type} is at max_workers");
        for line in lines.iter_mut().filter(|l| l.contains(" wait: ") && l.contains(&at_max)) {
            line.push_str(&format!("; this machine's {cores} cores hold {node_type} at {agents} agents"));
        }
    }
}

/// Drains are asked through the store (the agent takes no new work); terminations happen
/// at once (the decision only terminates quiet nodes).
async fn execute_removals(store: &Store, decision: &Decision, mut terminate: impl FnMut(&str) -> Result<()>) -> Result<()> {
    for d in &decision.drains {
        store.put_json(&layout::node_drain(&d.node_id), &serde_json::json!({"reason": d.reason, "at": Utc::now()})).await?;
    }
    for t in &decision.terminations {
        terminate(&t.node_id)?;
        let _ = store.delete(&layout::node_drain(&t.node_id)).await;
    }
    Ok(())
}

/// The autoscaler inside `fleetform up`.
pub async fn local_loop(cluster: Arc<LocalCluster>) {
    let store = match Store::open(&cluster.handles().store_uri).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleetform: autoscaler disabled: {e:#}");
            return;
        }
    };
    let mut persisted = load_state(&store).await;
    loop {
        tokio::time::sleep(LOCAL_ROUND).await;
        match local_round(&cluster, &store, &mut persisted).await {
            Ok(d) => {
                for line in d.decision_lines() {
                    println!("autoscaler: {line}");
                }
            }
            Err(e) => eprintln!("fleetform: autoscaler round failed: {e:#}"),
        }
    }
}

/// One round on AWS: instances by tag, heartbeats and demand from the store; launches
/// through the apply machinery (CreateFleet / RunInstances with fallback).
#[cfg(feature = "aws")]
pub async fn aws_round(ctx: &crate::aws::AwsContext, spec: &ClusterSpec, store: &Store, queue: &Queue, persisted: &mut Persisted) -> Result<Decision> {
    let beats = heartbeats(store).await?;
    let now = Utc::now();
    let mut nodes = Vec::new();
    for i in crate::aws::observe::instances(ctx, None).await? {
        let Some(t) = &i.node_type else { continue };
        if i.state == "terminated" {
            give_back_leases(store, queue, &i.id, &beats).await;
        }
        if *t == spec.head_node_type || !i.is_active() {
            continue;
        }
        let launched = DateTime::from_timestamp(i.launch_time, 0).unwrap_or(now);
        let mut n = node_of(&i.id, t, if i.spot { Market::Spot } else { Market::OnDemand }, &i.instance_type, i.zone.clone(), launched, i.state == "pending" || !beats.contains_key(&i.id), &beats);
        if matches!(i.state.as_str(), "stopping" | "stopped" | "shutting-down") {
            n.state = NodeState::Terminating;
        }
        nodes.push(n);
    }
    let obs = Observation { now, nodes, demand: demand(store, &beats).await? };
    let decision = decide(spec, &obs, &mut persisted.state);
    for l in &decision.launches {
        let out = crate::aws::nodes::launch(ctx, &l.node_type, l.count, &l.reason).await?;
        for (o, code) in &out.failed_offerings {
            let error = if o.market == Market::Spot && code != "InsufficientInstanceCapacity" { CapacityError::SpotUnavailable } else { CapacityError::InsufficientCapacity };
            persisted.state.launch_failed(now, Offering { market: o.market, instance_type: o.instance_type.clone(), zone: Some(o.zone.clone()) }, error);
        }
        for n in &out.launched {
            persisted.state.count_launches(&l.node_type, n.market, 1);
        }
        for m in &out.messages {
            persisted.state.remember(now, format!("{}: {m}", l.node_type));
        }
    }
    let doomed: Vec<String> = decision.terminations.iter().map(|t| t.node_id.clone()).collect();
    execute_removals(store, &decision, |_| Ok(())).await?;
    if !doomed.is_empty() {
        crate::aws::nodes::terminate(ctx, &doomed).await?;
    }
    persisted.status = Some(status(spec, &obs, &persisted.state, &decision));
    store.put_json(layout::autoscaler_state(), persisted).await?;
    Ok(decision)
}

#[cfg(feature = "aws")]
/// A terminated instance's agent is gone for sure (unlike a silent heartbeat, which may be
/// a slow network): the leases its last heartbeat lists go back to the queue now, not
/// when they expire (`fleetform_agent::leases`). Only while the heartbeat says it held
/// some: a drained agent released its own and wrote a stopped heartbeat.
async fn give_back_leases(store: &Store, queue: &Queue, instance: &str, beats: &HashMap<String, NodeHeartbeat>) {
    let Some(hb) = beats.get(instance) else { return };
    if hb.stopped || hb.leases.is_empty() {
        return;
    }
    match fleetform_agent::leases::give_back(store, queue, instance, "instance terminated").await {
        Ok(tasks) => tracing::info!(instance, ?tasks, "terminated instance: its tasks are queued again"),
        Err(e) => tracing::warn!(instance, "terminated instance: its leases could not be given back: {e:#}"),
    }
}

/// `fleetform reconcile [-f FILE] [--watch --interval N]`.
pub async fn command(file: &Path, watch: bool, interval: u64) -> Result<i32> {
    let spec = cluster::load(file)?;
    if spec.provider.kind == ProviderKind::Local {
        bail!(
            "the local provider's autoscaler runs inside `fleetform up -f {}` (it owns the agent processes); \
             `fleetform status` shows its decisions",
            file.display()
        );
    }
    aws_loop(&spec, watch, interval).await
}

#[cfg(not(feature = "aws"))]
async fn aws_loop(_spec: &ClusterSpec, _watch: bool, _interval: u64) -> Result<i32> {
    Err(fleetform_agent::without_aws("`fleetform reconcile` on the aws provider"))
}

#[cfg(feature = "aws")]
async fn aws_loop(spec: &ClusterSpec, watch: bool, interval: u64) -> Result<i32> {
    let handles = Handles::of(spec).await?;
    let store = handles.store().await?;
    let ctx = handles.aws_context(spec).await?;
    let queue = handles.queue().await?;
    let mut persisted = load_state(&store).await;
    loop {
        let decision = aws_round(&ctx, spec, &store, &queue, &mut persisted).await?;
        for line in decision.explanations.iter() {
            println!("{line}");
        }
        if !watch {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_secs(interval.max(1))).await;
    }
}
