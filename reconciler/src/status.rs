//! `fleetform status`: nodes (from their heartbeats), queues and jobs.

use std::path::Path;

use anyhow::Result;
use chrono::Utc;
use fleetform_core::queue::TaskQueue;
use fleetform_core::task::NodeHeartbeat;
use serde::Serialize;

use crate::jobs;

/// A heartbeat older than this marks the node as silent (3 missed 5 s heartbeats).
const SILENT_AFTER_SECONDS: i64 = 15;

#[derive(Serialize)]
struct Status {
    cluster: String,
    nodes: Vec<NodeHeartbeat>,
    queues: Vec<QueueStatus>,
    jobs: Vec<JobStatus>,
    /// The autoscaler's latest round (its table, demand and decisions with reasons).
    autoscaler: Option<crate::autoscaler::ClusterStatus>,
}

#[derive(Serialize)]
struct QueueStatus {
    class: String,
    queued: u64,
    in_flight: u64,
}

#[derive(Serialize)]
struct JobStatus {
    job_id: String,
    done: usize,
    failed: usize,
    tasks: usize,
}

pub async fn show(file: &Path, json: bool) -> Result<i32> {
    let c = jobs::ctx(file).await?;
    let mut nodes: Vec<NodeHeartbeat> = crate::autoscaler::run::heartbeats(&c.store).await?.into_values().collect();
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    // Nodes that stopped long ago are history, not cluster members.
    let now = Utc::now();
    nodes.retain(|n| !(n.stopped && (now - n.updated_at).num_minutes() > 10));
    let queue = c.handles.queue().await?;
    let mut classes: Vec<String> = c.spec.worker_types().flat_map(|(_, t)| t.resources.served_classes()).map(|k| k.slug()).collect();
    classes.sort();
    classes.dedup();
    let mut queues = Vec::new();
    for class in classes {
        let d = queue.depth(&class).await.unwrap_or_default();
        queues.push(QueueStatus { class, queued: d.visible, in_flight: d.in_flight });
    }
    let mut jobs_out = Vec::new();
    for j in fleetform_agent::jobs::list(&c.store).await?.into_iter().take(10) {
        let p = fleetform_agent::jobs::progress(&c.store, &j.job_id).await?;
        jobs_out.push(JobStatus { job_id: j.job_id, done: p.done.len(), failed: p.failed.len(), tasks: j.tasks });
    }
    let autoscaler = crate::autoscaler::run::load_state(&c.store).await.status;
    let status = Status { cluster: c.spec.cluster_name.clone(), nodes, queues, jobs: jobs_out, autoscaler };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(0);
    }
    println!("cluster {} ({:?} provider)", status.cluster, c.spec.provider.kind);
    println!("\nNODES");
    if status.nodes.is_empty() {
        println!("  none reporting");
    }
    for n in &status.nodes {
        let age = (now - n.updated_at).num_seconds();
        let state = if n.stopped {
            format!("stopped ({})", n.draining.clone().unwrap_or_default())
        } else if let Some(d) = &n.draining {
            format!("draining ({d})")
        } else if age > SILENT_AFTER_SECONDS {
            format!("silent {age}s")
        } else if n.busy_slots > 0 {
            "busy".into()
        } else {
            format!("idle {}s", (now - n.last_work_at).num_seconds())
        };
        println!(
            "  {:<22} {:<16} {}/{} slots busy  {:>6} tasks  {:>10} rows  {}{}",
            n.node_id,
            n.node_type,
            n.busy_slots,
            n.slots,
            n.tasks_done,
            n.rows_done,
            state,
            if n.scheduled_events.is_empty() { String::new() } else { format!("  scheduled: {}", n.scheduled_events.join("; ")) }
        );
        if let Some(failed) = &n.setup_failed {
            println!("    setup_commands failed: {failed} (log: {} on the node)", fleetform_core::layout::SETUP_LOG);
        }
    }
    println!("\nQUEUES");
    for q in &status.queues {
        println!("  {:<16} {:>6} queued  {:>6} in flight", q.class, q.queued, q.in_flight);
    }
    println!("\nJOBS");
    if status.jobs.is_empty() {
        println!("  none");
    }
    for j in &status.jobs {
        println!("  {:<40} {}/{} done  {} failed", j.job_id, j.done, j.tasks, j.failed);
    }
    println!("\nAUTOSCALER");
    match &status.autoscaler {
        Some(a) => println!("{a}"),
        None => println!("  no round yet (`fleetform reconcile`, or `fleetform up` on the local provider)"),
    }
    Ok(0)
}
