//! `fleetform status`: for each node type the nodes running, pending and draining, spot
//! versus on-demand, utilization and demand; then capacity errors, infeasible demand and
//! the latest decisions with their reasons. [`ClusterStatus`] is the `--json` form; its
//! `Display` is the table.

use std::fmt;

use chrono::{DateTime, Utc};
use fleetform_core::spec::{ClusterSpec, Market};
use serde::{Deserialize, Serialize};

use super::capacity::CapacityEntry;
use super::model::{AutoscalerState, Decision, Demand, HistoryEntry, Infeasible, NodeState, Observation};

/// Decision lines `fleetform status` shows: a screenful.
pub const RECENT_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeStatus {
    pub node_type: String,
    pub head: bool,
    pub running: u32,
    /// Launched, or running without a heartbeat yet.
    pub pending: u32,
    pub draining: u32,
    pub spot: u32,
    pub on_demand: u32,
    pub min_workers: Option<u32>,
    pub max_workers: Option<u32>,
    /// Nodes after this round's decision.
    pub desired: Option<u32>,
    pub busy_slots: u64,
    pub slots: u64,
    /// busy / slots of the running nodes; None without any slot.
    pub utilization: Option<f64>,
    /// Demand placed on this type by the last decision.
    pub queued: Option<u64>,
    pub in_flight: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub at: DateTime<Utc>,
    pub max_workers: u32,
    /// Workers running or pending (draining ones excluded), head excluded.
    pub workers: u32,
    pub types: Vec<TypeStatus>,
    pub demand: Vec<Demand>,
    pub infeasible: Vec<Infeasible>,
    pub capacity_errors: Vec<CapacityEntry>,
    /// What the latest round saw and did, line by line.
    pub latest_round: Vec<String>,
    /// The latest decision lines, oldest first.
    pub recent: Vec<HistoryEntry>,
}

/// Build the status from what the latest round observed and decided.
pub fn status(spec: &ClusterSpec, obs: &Observation, state: &AutoscalerState, decision: &Decision) -> ClusterStatus {
    let mut names: Vec<String> = vec![spec.head_node_type.clone()];
    names.extend(spec.worker_types().map(|(n, _)| n.clone()));
    for n in &obs.nodes {
        if !names.contains(&n.node_type) {
            names.push(n.node_type.clone());
        }
    }
    let mut types = Vec::new();
    let mut workers = 0;
    for name in names {
        let head = name == spec.head_node_type;
        let spec_t = spec.available_node_types.get(&name);
        let plan = decision.plan.iter().find(|p| p.node_type == name);
        let mut s = TypeStatus {
            node_type: name.clone(),
            head,
            running: 0,
            pending: 0,
            draining: 0,
            spot: 0,
            on_demand: 0,
            min_workers: spec_t.filter(|_| !head).map(|t| t.min_workers),
            max_workers: spec_t.filter(|_| !head).map(|_| spec.type_max_workers(&name)),
            desired: plan.map(|p| p.desired),
            busy_slots: 0,
            slots: 0,
            utilization: None,
            queued: plan.map(|p| p.queued),
            in_flight: plan.map(|p| p.in_flight),
        };
        for n in obs.nodes.iter().filter(|n| n.node_type == name && n.state != NodeState::Terminating) {
            match n.market {
                Market::Spot => s.spot += 1,
                Market::OnDemand => s.on_demand += 1,
            }
            if n.is_draining() {
                s.draining += 1;
            } else if n.state == NodeState::Running && n.heartbeat.is_some() {
                s.running += 1;
            } else {
                s.pending += 1;
            }
            if let Some(hb) = n.heartbeat.as_ref().filter(|_| !n.is_draining()) {
                s.busy_slots += hb.busy_slots as u64;
                s.slots += hb.slots as u64;
            }
        }
        if s.slots > 0 {
            s.utilization = Some(s.busy_slots as f64 / s.slots as f64);
        }
        if !head {
            workers += s.running + s.pending;
        }
        types.push(s);
    }
    ClusterStatus {
        cluster: spec.cluster_name.clone(),
        at: obs.now,
        max_workers: spec.max_workers,
        workers,
        types,
        demand: obs.demand.iter().filter(|d| d.queued + d.in_flight > 0).cloned().collect(),
        infeasible: state.infeasible.values().cloned().collect(),
        capacity_errors: state.capacity.entries().into_iter().filter(|e| e.until > obs.now).cloned().collect(),
        latest_round: decision.explanations.clone(),
        recent: state.recent(RECENT_LINES).cloned().collect(),
    }
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

impl ClusterStatus {
    /// The per-type table: a header and a row per node type.
    fn type_rows(&self) -> Vec<Vec<String>> {
        let header = [
            "NODE TYPE", "RUNNING", "PENDING", "DRAINING", "SPOT", "ON-DEMAND", "MIN", "MAX", "DESIRED", "UTILIZATION",
            // Queued tasks the round placed on the type (the rest wait, with the reason
            // below), not the queue's depth: `fleetform status` shows that under QUEUES.
            "PLACED", "IN FLIGHT",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for t in &self.types {
            let util = match t.utilization {
                Some(u) => format!("{}/{} ({:.0}%)", t.busy_slots, t.slots, u * 100.0),
                None => "-".to_string(),
            };
            let name = if t.head && t.node_type != "head" { format!("{} (head)", t.node_type) } else { t.node_type.clone() };
            rows.push(vec![
                name,
                t.running.to_string(),
                t.pending.to_string(),
                t.draining.to_string(),
                t.spot.to_string(),
                t.on_demand.to_string(),
                opt(t.min_workers),
                opt(t.max_workers),
                opt(t.desired),
                util,
                opt(t.queued),
                opt(t.in_flight),
            ]);
        }
        rows
    }
}

/// Rows as aligned columns: the first left-aligned, the others right-aligned.
fn write_table(f: &mut fmt::Formatter<'_>, rows: &[Vec<String>]) -> fmt::Result {
    let columns = rows.first().map_or(0, |r| r.len());
    let widths: Vec<usize> = (0..columns).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c == 0 {
                line.push_str(&format!("{cell:<w$}", w = widths[c]));
            } else {
                line.push_str(&format!("  {cell:>w$}", w = widths[c]));
            }
        }
        writeln!(f, "{}", line.trim_end())?;
    }
    Ok(())
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cluster {} at {}: {} of max {} workers up or pending",
            self.cluster,
            self.at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.workers,
            self.max_workers
        )?;
        writeln!(f)?;
        write_table(f, &self.type_rows())?;
        if !self.demand.is_empty() {
            writeln!(f, "\ndemand:")?;
            for d in &self.demand {
                writeln!(f, "  {}: {} queued, {} in flight", d.resources, d.queued, d.in_flight)?;
            }
        }
        if !self.infeasible.is_empty() {
            writeln!(f, "\ninfeasible demand (reported once, not retried):")?;
            for i in &self.infeasible {
                writeln!(f, "  {i} (since {})", i.since.format("%H:%M"))?;
            }
        }
        if !self.capacity_errors.is_empty() {
            writeln!(f, "\nskipped offerings (capacity errors):")?;
            for e in &self.capacity_errors {
                writeln!(f, "  {e}")?;
            }
        }
        if !self.latest_round.is_empty() {
            writeln!(f, "\nlatest round:")?;
            for l in &self.latest_round {
                writeln!(f, "  {l}")?;
            }
        }
        if !self.recent.is_empty() {
            writeln!(f, "\nlatest decisions:")?;
            for h in &self.recent {
                writeln!(f, "  {} {}", h.at.format("%H:%M:%S"), h.line)?;
            }
        }
        Ok(())
    }
}
