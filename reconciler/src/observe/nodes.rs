//! The nodes section of the view: one row per heartbeat (plus launched local agents
//! without one yet), and per node type the nodes by state and the slots.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fleetform_core::instance::Arch;
use fleetform_core::spec::{ClusterSpec, ProviderKind};
use fleetform_core::task::NodeHeartbeat;

use super::model::{NodeStatus, NodeView, Slots, TypeView};
use super::SILENT_AFTER_SECONDS;

/// Stopped nodes stay in the view this long (then they are history, not members).
const STOPPED_SHOWN_FOR_SECONDS: f64 = 600.0;

/// The drain reason an agent reports after a spot interruption notice.
pub const SPOT_INTERRUPTION: &str = "spot-interruption";

fn seconds(now: DateTime<Utc>, then: DateTime<Utc>) -> f64 {
    (now - then).num_milliseconds().max(0) as f64 / 1000.0
}

fn status_of(hb: &NodeHeartbeat, age: f64) -> NodeStatus {
    if hb.stopped {
        NodeStatus::Stopped
    } else if hb.draining.as_deref() == Some(SPOT_INTERRUPTION) {
        NodeStatus::Interrupted
    } else if hb.draining.is_some() {
        NodeStatus::Draining
    } else if age > SILENT_AFTER_SECONDS {
        NodeStatus::Silent
    } else {
        NodeStatus::Running
    }
}

/// `x86_64`/`arm64` of a node type: from the spec on AWS, this machine's on the local
/// provider (its agents run here).
pub fn arch_of(spec: &ClusterSpec, node_type: &str) -> String {
    let arch = match spec.provider.kind {
        ProviderKind::Local => Arch::of_this_machine(),
        ProviderKind::Aws => spec.arch_of(node_type),
    };
    arch.map_or_else(|| "unknown".to_string(), |a| a.ec2().to_string())
}

pub fn market_of(spec: &ClusterSpec, node_type: &str) -> String {
    match (spec.provider.kind, spec.available_node_types.get(node_type)) {
        (ProviderKind::Aws, Some(t)) => t.node_config.market.as_str().to_string(),
        _ => "on-demand".to_string(),
    }
}

/// Rows for the heartbeats, and for `launched` nodes (id, type) that have none yet.
pub fn node_views(spec: &ClusterSpec, beats: &HashMap<String, NodeHeartbeat>, launched: &[(String, String)], now: DateTime<Utc>) -> Vec<NodeView> {
    let mut nodes: Vec<NodeView> = beats
        .values()
        .filter_map(|hb| {
            let age = seconds(now, hb.updated_at);
            let status = status_of(hb, age);
            (status != NodeStatus::Stopped || age < STOPPED_SHOWN_FOR_SECONDS).then(|| NodeView {
                node_id: hb.node_id.clone(),
                node_type: hb.node_type.clone(),
                arch: arch_of(spec, &hb.node_type),
                market: market_of(spec, &hb.node_type),
                status,
                reason: hb.draining.clone(),
                slots: hb.slots as u64,
                busy_slots: hb.busy_slots as u64,
                tasks_in_flight: hb.tasks_in_flight.clone(),
                tasks_done: hb.tasks_done,
                rows_done: hb.rows_done,
                heartbeat_age_seconds: Some(age),
                idle_seconds: (hb.busy_slots == 0).then(|| seconds(now, hb.last_work_at)),
                scheduled_events: hb.scheduled_events.clone(),
                setup_failed: hb.setup_failed.clone(),
                supervisor_gone: false,
            })
        })
        .collect();
    for (id, node_type) in launched.iter().filter(|(id, _)| !beats.contains_key(id)) {
        nodes.push(NodeView {
            node_id: id.clone(),
            node_type: node_type.clone(),
            arch: arch_of(spec, node_type),
            market: market_of(spec, node_type),
            status: NodeStatus::Pending,
            reason: None,
            slots: 0,
            busy_slots: 0,
            tasks_in_flight: Vec::new(),
            tasks_done: 0,
            rows_done: 0,
            heartbeat_age_seconds: None,
            idle_seconds: None,
            scheduled_events: Vec::new(),
            setup_failed: None,
            supervisor_gone: false,
        });
    }
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    nodes
}

/// Per node type (the spec's, then any other a heartbeat names): nodes by state, slots.
pub fn type_views(spec: &ClusterSpec, nodes: &[NodeView]) -> Vec<TypeView> {
    let mut names: Vec<String> = spec.available_node_types.keys().cloned().collect();
    for n in nodes {
        if !names.contains(&n.node_type) {
            names.push(n.node_type.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let head = name == spec.head_node_type;
            let mut t = TypeView {
                arch: arch_of(spec, &name),
                market: market_of(spec, &name),
                min_workers: spec.available_node_types.get(&name).filter(|_| !head).map(|t| t.min_workers),
                max_workers: spec.available_node_types.get(&name).filter(|_| !head).map(|_| spec.type_max_workers(&name)),
                node_type: name,
                head,
                nodes: Default::default(),
                slots: Slots::default(),
            };
            for n in nodes.iter().filter(|n| n.node_type == t.node_type) {
                *t.nodes.entry(n.status).or_default() += 1;
                if n.status.is_up() {
                    t.slots.total += n.slots;
                    t.slots.busy += n.busy_slots;
                }
            }
            t
        })
        .collect()
}

/// The cluster's slots: the sum over the types.
pub fn total_slots(types: &[TypeView]) -> Slots {
    Slots { total: types.iter().map(|t| t.slots.total).sum(), busy: types.iter().map(|t| t.slots.busy).sum() }
}
