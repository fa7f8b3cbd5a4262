//! One autoscaler round: from an [`Observation`] and the remembered [`AutoscalerState`],
//! decide what to launch, drain and terminate, with a reason for each. Pure: time comes
//! from `obs.now`, nothing is read or written outside the arguments.
//!
//! Order of a round (each stage a function below):
//! 1. expire capacity errors; classify nodes (head, broken, draining, alive) (`classify`);
//! 2. terminate broken nodes (stuck pending, silent) so the plan replaces them;
//! 3. pack the demand onto worker types ([`pack`]), report infeasible demand once
//!    (`report_unplaced`); work out what the caps force out (`forced_out`);
//! 4. per type (`scale_up`): launch what the plan wants, within `upscaling_speed` (Ray's rule:
//!    pending <= max(5, speed x running) per node type), `on_demand_base` first and the
//!    offerings the capacity cache allows;
//! 5. per type (`scale_down`): remove nodes idle past `idle_timeout_minutes` that the plan does not
//!    need (never below `min_workers`; a node still holding tasks is drained, not
//!    terminated) and nodes over `max_workers`.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use fleetform_core::spec::{ClusterSpec, Market};

use super::capacity::{CapacityCache, CapacityError, Offering};
use super::model::{
    AutoscalerState, Blocked, Decision, Drain, Infeasible, Launch, NodeState, Observation,
    ObservedNode, Termination, TypePlan,
};
use super::pack::{pack, PackInput, Packing, Shape, TypeCapacity, TypeLoad, UnplacedWhy};

/// A launch still `pending` after this is stuck and is terminated, and its offering is
/// cached as short of capacity so the replacement goes elsewhere. EC2 instances leave
/// `pending` within a minute or two when AWS has the capacity (CreateFleet `instant`
/// answers at once); ten minutes is far past any healthy launch yet short enough that a
/// workshop does not sit "launching forever" (ray-project/ray #27521).
pub const LAUNCH_TIMEOUT: Duration = Duration::minutes(10);

/// A running node whose agent has not written a first heartbeat this long after launch is
/// terminated and replaced. Boot takes ~30 s, user-data fetching the agent from the store
/// and starting it about a minute more; ten minutes leaves room for a slow package mirror
/// or a large instance's first boot, and a node silent longer will not come up.
pub const HEARTBEAT_GRACE: Duration = Duration::minutes(10);

/// A node whose agent has heartbeated before but not for this long is gone (hung,
/// partitioned, or reclaimed under us) and is terminated and replaced. Agents write a
/// heartbeat every few seconds, so five minutes is many missed beats, not a store
/// hiccup; by then its leased tasks are back in the queue (visibility timeout).
pub const HEARTBEAT_LOST: Duration = Duration::minutes(5);

/// A draining node still holding tasks after this is terminated anyway. Draining
/// checkpoints in-flight tasks at the next row-group boundary (seconds to a couple of
/// minutes); an agent still busy after fifteen is stuck, and terminating it is safe: its
/// leases expire and the tasks resume from their checkpoints elsewhere (decision 7).
pub const DRAIN_TIMEOUT: Duration = Duration::minutes(15);

/// Launches in flight are capped at max(this, upscaling_speed x running) per node type,
/// Ray's `UPSCALING_INITIAL_NUM_NODES`: a small or empty type still grows five at a time
/// instead of one.
pub const UPSCALING_INITIAL_NODES: u32 = 5;

pub fn decide(spec: &ClusterSpec, obs: &Observation, state: &mut AutoscalerState) -> Decision {
    let now = obs.now;
    let mut d = Decision::new(now);
    for e in state.capacity.expire(now) {
        d.explanations
            .push(format!("retry {}: its {} has expired", e.offering, e.error));
    }
    let names: Vec<&String> = spec.worker_types().map(|(n, _)| n).collect();
    let nodes = classify(spec, obs, &names, state, &mut d);
    track_idle(&nodes.alive, state, now);
    let limits = Limits::of(spec, &names);
    let shapes = Shape::merge(&obs.demand);
    // Stage 3: pack the demand onto the types, given what is alive and busy now.
    let alive_n: Vec<u32> = nodes.alive.iter().map(|a| a.len() as u32).collect();
    let busy: Vec<u64> = nodes
        .alive
        .iter()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.heartbeat.as_ref())
                .map(|h| h.busy_slots as u64)
                .sum()
        })
        .collect();
    let input = PackInput {
        types: &limits.types,
        alive: &alive_n,
        busy_slots: &busy,
        min_workers: &limits.min,
        max_workers: &limits.max,
        cluster_max: spec.max_workers,
        fraction: spec.target_utilization_fraction,
    };
    let packing = pack(&input, &shapes);
    report_unplaced(spec, &limits, &shapes, &packing, state, &mut d, now);
    let forced = forced_out(spec, &limits, &nodes.alive);
    for (t, name) in names.iter().enumerate() {
        let ty = TypeRound {
            name: name.as_str(),
            alive: &nodes.alive[t],
            draining: nodes.draining[t],
            replaced: &nodes.replaced[t],
            min: limits.min[t],
            max: limits.max[t],
            load: &packing.loads[t],
            forced: forced[t],
        };
        let launching = scale_up(spec, &ty, state, &mut d);
        let removed = scale_down(spec, &ty, state, &mut d);
        d.plan.push(ty.plan(launching, removed));
    }
    for line in d.decision_lines() {
        state.remember(now, line);
    }
    d
}

/// The worker nodes of a round by type (indexes of `spec.worker_types()`).
struct Classified<'a> {
    alive: Vec<Vec<&'a ObservedNode>>,
    draining: Vec<u32>,
    /// Broken nodes terminated this round, which the launches replace.
    replaced: Vec<Vec<&'a str>>,
}

/// Stages 1-2: sort the nodes; terminate broken ones (a launch stuck pending also marks its
/// offering short of capacity); follow draining ones; drain or terminate nodes whose type
/// left the spec.
fn classify<'a>(
    spec: &ClusterSpec,
    obs: &'a Observation,
    names: &[&String],
    state: &mut AutoscalerState,
    d: &mut Decision,
) -> Classified<'a> {
    let now = obs.now;
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let nt = names.len();
    let mut c = Classified {
        alive: vec![Vec::new(); nt],
        draining: vec![0; nt],
        replaced: vec![Vec::new(); nt],
    };
    let mut seen_draining: BTreeSet<&str> = BTreeSet::new();
    for node in &obs.nodes {
        if node.node_type == spec.head_node_type || node.state == NodeState::Terminating {
            continue;
        }
        let t = index.get(node.node_type.as_str()).copied();
        if let Some(reason) = broken(node, now) {
            if let NodeState::Pending { .. } = node.state {
                let offering = Offering {
                    market: node.market,
                    instance_type: node.instance_type.clone(),
                    zone: node.zone.clone(),
                };
                state
                    .capacity
                    .record(offering, CapacityError::LaunchTimedOut, now);
            }
            terminate(d, node, reason);
            if let Some(t) = t {
                c.replaced[t].push(&node.id);
            }
            continue;
        }
        let orphan = t.is_none();
        if node.is_draining() || (orphan && !node.is_quiet()) {
            seen_draining.insert(&node.id);
            if let Some(t) = t {
                c.draining[t] += 1;
            }
            if !node.is_draining() {
                state.draining_since.insert(node.id.clone(), now);
                drain(
                    d,
                    node,
                    format!("node type `{}` is no longer in the spec", node.node_type),
                );
            } else {
                follow_drain(d, state, node, now);
            }
            continue;
        }
        match t {
            Some(t) => c.alive[t].push(node),
            None => terminate(
                d,
                node,
                format!("node type `{}` is no longer in the spec", node.node_type),
            ),
        }
    }
    state
        .draining_since
        .retain(|id, _| seen_draining.contains(id.as_str()));
    c
}

/// Idle tracking: a node with no busy slot is idle since its last work.
fn track_idle(alive: &[Vec<&ObservedNode>], state: &mut AutoscalerState, now: DateTime<Utc>) {
    let mut idle_ids: BTreeSet<&str> = BTreeSet::new();
    for node in alive.iter().flatten() {
        let Some(hb) = &node.heartbeat else { continue };
        if hb.busy_slots == 0 && node.state == NodeState::Running {
            let last = hb.last_work_at.min(now);
            let e = state.idle_since.entry(node.id.clone()).or_insert(last);
            *e = (*e).max(last);
            idle_ids.insert(&node.id);
        }
    }
    state
        .idle_since
        .retain(|id, _| idle_ids.contains(id.as_str()));
}

/// Per worker type: what one node offers, `min_workers`, `max_workers`.
struct Limits {
    types: Vec<TypeCapacity>,
    min: Vec<u32>,
    max: Vec<u32>,
}

impl Limits {
    fn of(spec: &ClusterSpec, names: &[&String]) -> Limits {
        Limits {
            types: names.iter().map(|n| TypeCapacity::of(spec, n)).collect(),
            min: names
                .iter()
                .map(|n| spec.available_node_types[*n].min_workers)
                .collect(),
            max: names.iter().map(|n| spec.type_max_workers(n)).collect(),
        }
    }
}

/// Stage 3's leftovers: demand no node type fits is reported once (and remembered until
/// it goes); demand held by `max_workers` is explained every round.
fn report_unplaced(
    spec: &ClusterSpec,
    limits: &Limits,
    shapes: &[Shape],
    packing: &Packing,
    state: &mut AutoscalerState,
    d: &mut Decision,
    now: DateTime<Utc>,
) {
    let mut infeasible_now: BTreeSet<String> = BTreeSet::new();
    for u in &packing.unplaced {
        let s = &shapes[u.shape];
        match u.why {
            UnplacedWhy::NoNodeType => {
                let key = s.resources.to_string();
                infeasible_now.insert(key.clone());
                match state.infeasible.get_mut(&key) {
                    Some(known) => known.count = u.tasks,
                    None => {
                        let inf = Infeasible {
                            resources: s.resources.clone(),
                            count: u.tasks,
                            reason: why_infeasible(&limits.types, s),
                            since: now,
                        };
                        d.explanations.push(inf.to_string());
                        d.infeasible.push(inf.clone());
                        state.infeasible.insert(key, inf);
                    }
                }
            }
            UnplacedWhy::Capped => {
                let total: u32 = packing.loads.iter().map(|l| l.nodes).sum();
                let mut at: Vec<String> = limits
                    .types
                    .iter()
                    .enumerate()
                    .filter(|(t, ty)| ty.fits(s) > 0 && packing.loads[*t].nodes >= limits.max[*t])
                    .map(|(t, ty)| format!("{} is at max_workers {}", ty.node_type, limits.max[t]))
                    .collect();
                if total >= spec.max_workers {
                    at.push(format!(
                        "the cluster is at max_workers {}",
                        spec.max_workers
                    ));
                }
                d.explanations.push(format!(
                    "{} tasks needing {} wait: {}",
                    u.tasks,
                    s.resources,
                    at.join(", ")
                ));
            }
        }
    }
    let gone: Vec<String> = state
        .infeasible
        .keys()
        .filter(|k| !infeasible_now.contains(*k))
        .cloned()
        .collect();
    for k in gone {
        state.infeasible.remove(&k);
        d.explanations.push(format!(
            "demand {k} is no longer infeasible (gone, or a node type now fits it)"
        ));
    }
}

/// Nodes the caps force out, per type: over a type's max_workers, then over the
/// cluster's, taking the least disruptive nodes across types (never below min_workers).
fn forced_out(spec: &ClusterSpec, limits: &Limits, alive: &[Vec<&ObservedNode>]) -> Vec<u32> {
    let alive_n: Vec<u32> = alive.iter().map(|a| a.len() as u32).collect();
    let nt = alive.len();
    let mut forced: Vec<u32> = (0..nt)
        .map(|t| alive_n[t].saturating_sub(limits.max[t]))
        .collect();
    let mut excess = (0..nt)
        .map(|t| alive_n[t] - forced[t])
        .sum::<u32>()
        .saturating_sub(spec.max_workers);
    if excess > 0 {
        let mut all: Vec<(usize, &ObservedNode)> = alive
            .iter()
            .enumerate()
            .flat_map(|(t, v)| v.iter().map(move |n| (t, *n)))
            .collect();
        all.sort_by_key(|(_, n)| disruption(n));
        let mut skip = forced.clone(); // each type's own excess goes first, in the same order
        for (t, _) in all {
            if excess == 0 {
                break;
            }
            if skip[t] > 0 {
                skip[t] -= 1;
            } else if alive_n[t] - forced[t] > limits.min[t] {
                forced[t] += 1;
                excess -= 1;
            }
        }
    }
    forced
}

/// One worker type in stages 4-5.
struct TypeRound<'a> {
    name: &'a str,
    alive: &'a [&'a ObservedNode],
    draining: u32,
    replaced: &'a [&'a str],
    min: u32,
    max: u32,
    load: &'a TypeLoad,
    /// Nodes the caps force out (`forced_out`).
    forced: u32,
}

impl TypeRound<'_> {
    fn alive_n(&self) -> u32 {
        self.alive.len() as u32
    }
    /// Nodes with a heartbeat (they count for `upscaling_speed`).
    fn running(&self) -> u32 {
        self.alive
            .iter()
            .filter(|n| n.state == NodeState::Running && n.heartbeat.is_some())
            .count() as u32
    }
    fn needed(&self) -> u32 {
        self.load.needed().max(self.min)
    }
    fn plan(&self, launching: u32, removed: u32) -> TypePlan {
        let running = self.running();
        TypePlan {
            node_type: self.name.to_string(),
            running,
            pending: self.alive_n() - running,
            draining: self.draining,
            min_workers: self.min,
            max_workers: self.max,
            queued: self.load.queued,
            in_flight: self.load.in_flight,
            needed: self.needed(),
            desired: self.alive_n() + launching - removed,
            launching,
        }
    }
}

/// Stage 4: launch what the plan wants within `upscaling_speed` (Ray's rule: pending <=
/// max(5, speed x running) per node type), `on_demand_base` first, over the offerings the
/// capacity cache allows. Returns the nodes launching.
fn scale_up(
    spec: &ClusterSpec,
    ty: &TypeRound<'_>,
    state: &AutoscalerState,
    d: &mut Decision,
) -> u32 {
    let (l, alive_n, running, needed) = (ty.load, ty.alive_n(), ty.running(), ty.needed());
    let pending = alive_n - running;
    let wanted = l.nodes.saturating_sub(alive_n);
    let pending_cap =
        UPSCALING_INITIAL_NODES.max((spec.upscaling_speed * running as f64).floor() as u32);
    let allowed = pending_cap
        .saturating_sub(pending)
        .max(ty.min.saturating_sub(alive_n));
    let launch = wanted.min(allowed);
    d.explanations.push(format!(
        "{}: {running} running, {pending} pending, {} draining; {} tasks ({} queued) need {needed} nodes{}{}",
        ty.name,
        ty.draining,
        l.queued + l.in_flight,
        l.queued,
        if ty.min > 0 { format!(" (min_workers {})", ty.min) } else { String::new() },
        if needed > l.nodes { format!("; max_workers holds it at {}", l.nodes) } else { String::new() },
    ));
    if wanted == 0 {
        return 0;
    }
    let mut reason = launch_reason(
        l,
        spec.target_utilization_fraction,
        ty.min,
        alive_n,
        ty.replaced,
    );
    if launch < wanted {
        reason.push_str(&format!(
            "; {wanted} wanted, upscaling_speed {} allows {pending_cap} pending with {running} running",
            spec.upscaling_speed
        ));
    }
    let od_alive = ty
        .alive
        .iter()
        .filter(|n| n.market == Market::OnDemand)
        .count() as u32;
    let p = plan_launches(
        spec,
        &state.capacity,
        ty.name,
        launch,
        od_alive,
        &reason,
        d.at,
    );
    let launching = p.launches.iter().map(|l| l.count).sum::<u32>();
    d.explanations.extend(p.lines);
    d.launches.extend(p.launches);
    d.blocked.extend(p.blocked);
    launching
}

/// Stage 5: remove nodes idle past `idle_timeout_minutes` that the plan does not need
/// (never below `min_workers` or the on-demand base; a node still holding tasks is
/// drained, not terminated), then what the caps force out. Returns the nodes removed.
fn scale_down(
    spec: &ClusterSpec,
    ty: &TypeRound<'_>,
    state: &mut AutoscalerState,
    d: &mut Decision,
) -> u32 {
    let idle_timeout =
        Duration::milliseconds((spec.idle_timeout_minutes.max(0.0) * 60_000.0).round() as i64);
    let mut idle: Vec<(&ObservedNode, DateTime<Utc>)> = ty
        .alive
        .iter()
        .filter_map(|n| state.idle_since.get(&n.id).map(|s| (*n, *s)))
        .collect();
    idle.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
    let mut removed = remove_idle(spec, ty, &idle, idle_timeout, state, d);
    if (removed.len() as u32) < ty.forced {
        remove_forced(spec, ty, &mut removed, state, d);
    }
    explain_idle_waiting(spec, ty, &idle, idle_timeout, &removed, d);
    removed.len() as u32
}

/// The idle nodes past the timeout, oldest first, as many as may go: beyond what the
/// plan needs (or the caps force), keeping the on-demand base.
fn remove_idle<'a>(
    spec: &ClusterSpec,
    ty: &TypeRound<'a>,
    idle: &[(&'a ObservedNode, DateTime<Utc>)],
    idle_timeout: Duration,
    state: &mut AutoscalerState,
    d: &mut Decision,
) -> BTreeSet<&'a str> {
    let now = d.at;
    let cfg = &spec.available_node_types[ty.name].node_config;
    let forced = ty.forced;
    let removable = ty.alive_n().saturating_sub(ty.needed()).max(forced);
    let base = if cfg.market == Market::Spot { cfg.on_demand_base } else { 0 };
    let mut od_left = ty.alive.iter().filter(|n| n.market == Market::OnDemand).count() as u32;
    let mut removed: BTreeSet<&str> = BTreeSet::new();
    for (node, since) in idle {
        if removed.len() as u32 >= removable {
            break;
        }
        let idle_for = now - *since;
        if idle_for < idle_timeout {
            continue;
        }
        if node.market == Market::OnDemand && od_left <= base && (removed.len() as u32) >= forced {
            continue; // keep the on-demand base
        }
        remove(d, state, node, format!("idle {} min", idle_for.num_minutes()), now);
        removed.insert(&node.id);
        if node.market == Market::OnDemand {
            od_left = od_left.saturating_sub(1);
        }
    }
    removed
}

/// What the caps force out beyond the idle ones: least disruptive first (idle, then not
/// yet up, then the least busy).
fn remove_forced<'a>(
    spec: &ClusterSpec,
    ty: &TypeRound<'a>,
    removed: &mut BTreeSet<&'a str>,
    state: &mut AutoscalerState,
    d: &mut Decision,
) {
    let why = if ty.alive_n() > ty.max {
        format!("over max_workers {} for {}", ty.max, ty.name)
    } else {
        format!("over the cluster's max_workers {}", spec.max_workers)
    };
    let mut rest: Vec<&ObservedNode> = ty.alive.iter().copied().filter(|n| !removed.contains(n.id.as_str())).collect();
    rest.sort_by_key(|n| disruption(n));
    let now = d.at;
    for node in rest {
        if removed.len() as u32 >= ty.forced {
            break;
        }
        remove(d, state, node, why.clone(), now);
        removed.insert(&node.id);
    }
}

/// Say when idle nodes the plan does not need will reach the timeout.
fn explain_idle_waiting(
    spec: &ClusterSpec,
    ty: &TypeRound<'_>,
    idle: &[(&ObservedNode, DateTime<Utc>)],
    idle_timeout: Duration,
    removed: &BTreeSet<&str>,
    d: &mut Decision,
) {
    let now = d.at;
    let kept = || idle.iter().filter(|(n, _)| !removed.contains(n.id.as_str()));
    let idle_waiting = kept().filter(|(_, s)| now - *s < idle_timeout).count();
    if idle_waiting == 0 || ty.alive_n() <= ty.needed() {
        return;
    }
    if let Some(first) = kept().map(|(_, s)| *s + idle_timeout).min() {
        d.explanations.push(format!(
            "{}: {idle_waiting} idle node{} not needed; the first reaches idle_timeout_minutes {} at {}",
            ty.name,
            if idle_waiting == 1 { "" } else { "s" },
            spec.idle_timeout_minutes,
            first.format("%H:%M")
        ));
    }
}

/// The launches of one node type, and the nodes no offering can take now.
#[derive(Debug, Default)]
pub struct LaunchPlan {
    pub launches: Vec<Launch>,
    pub blocked: Vec<Blocked>,
    /// The skipped offerings, launches and holds, in order, for a human.
    pub lines: Vec<String>,
}

/// Launch `count` nodes of `node_type`: on-demand first while the type is below its
/// `on_demand_base` (`on_demand_alive` counts the live ones), the rest in the type's
/// market, each over the offerings `capacity` allows at `now`. Used by every round, and by
/// `apply` for `min_workers` and the head, so both honour the same cache.
pub fn plan_launches(
    spec: &ClusterSpec,
    capacity: &CapacityCache,
    node_type: &str,
    count: u32,
    on_demand_alive: u32,
    reason: &str,
    now: DateTime<Utc>,
) -> LaunchPlan {
    let mut out = LaunchPlan::default();
    let Some(t) = spec.available_node_types.get(node_type) else {
        return out;
    };
    let cfg = &t.node_config;
    let base = if cfg.market == Market::Spot {
        cfg.on_demand_base
    } else {
        0
    };
    let od = base.saturating_sub(on_demand_alive).min(count);
    let parts = [
        (
            Market::OnDemand,
            od,
            format!(" (on-demand: on_demand_base {base})"),
        ),
        (cfg.market, count - od, String::new()),
    ];
    for (market, count, note) in parts {
        if count == 0 {
            continue;
        }
        let offers = capacity.offerings(spec, node_type, market, now);
        out.lines
            .extend(offers.skipped.iter().map(|s| s.to_string()));
        if offers.usable.is_empty() {
            let retry = offers.skipped.iter().map(|s| s.until).min();
            let markets = if offers.skipped.iter().any(|s| s.offering.market != market) {
                "spot and on-demand"
            } else {
                market.as_str()
            };
            let b = Blocked {
                node_type: node_type.to_string(),
                count,
                reason: format!(
                    "every {markets} offering had a capacity error{}",
                    retry
                        .map(|r| format!("; retrying at {}", r.format("%H:%M")))
                        .unwrap_or_default()
                ),
            };
            out.lines.push(b.to_string());
            out.blocked.push(b);
            continue;
        }
        let launch = Launch {
            node_type: node_type.to_string(),
            count,
            market,
            offerings: offers.usable,
            skipped: offers.skipped,
            reason: format!("{reason}{note}"),
            decision: 0,
        };
        out.lines.push(launch.to_string());
        out.launches.push(launch);
    }
    out
}

/// Why a node must go now, if it is stuck or silent.
fn broken(node: &ObservedNode, now: DateTime<Utc>) -> Option<String> {
    match (&node.state, &node.heartbeat) {
        (NodeState::Pending { since }, _) if now - *since >= LAUNCH_TIMEOUT => {
            Some(format!("pending {} min", (now - *since).num_minutes()))
        }
        (NodeState::Running | NodeState::Draining, None)
            if now - node.launched_at >= HEARTBEAT_GRACE =>
        {
            Some(format!(
                "no heartbeat {} min after launch",
                (now - node.launched_at).num_minutes()
            ))
        }
        (_, Some(hb)) if !hb.stopped && now - hb.updated_at >= HEARTBEAT_LOST => Some(format!(
            "no heartbeat for {} min",
            (now - hb.updated_at).num_minutes()
        )),
        _ => None,
    }
}

/// Sort key of nodes to remove, least disruptive first: idle (longest idle first), then
/// not yet up, then the least busy.
fn disruption(n: &ObservedNode) -> (u8, usize, DateTime<Utc>, String) {
    let class = match &n.heartbeat {
        Some(_) if n.is_quiet() => 0,
        None => 1,
        Some(_) => 2,
    };
    let last = n
        .heartbeat
        .as_ref()
        .map_or(n.launched_at, |h| h.last_work_at);
    (class, n.tasks_in_flight(), last, n.id.clone())
}

fn terminate(d: &mut Decision, node: &ObservedNode, reason: String) {
    let t = Termination {
        node_id: node.id.clone(),
        node_type: node.node_type.clone(),
        reason,
    };
    d.explanations.push(t.to_string());
    d.terminations.push(t);
}

fn drain(d: &mut Decision, node: &ObservedNode, reason: String) {
    let n = node.tasks_in_flight();
    let reason = format!(
        "{reason}; {n} task{} in flight",
        if n == 1 { "" } else { "s" }
    );
    let x = Drain {
        node_id: node.id.clone(),
        node_type: node.node_type.clone(),
        reason,
    };
    d.explanations.push(x.to_string());
    d.drains.push(x);
}

/// Remove an alive node: terminate it when it holds nothing, drain it otherwise.
fn remove(
    d: &mut Decision,
    state: &mut AutoscalerState,
    node: &ObservedNode,
    reason: String,
    now: DateTime<Utc>,
) {
    if node.is_quiet() {
        terminate(d, node, reason);
    } else {
        state.draining_since.insert(node.id.clone(), now);
        drain(d, node, reason);
    }
}

/// A draining node: terminate it once it holds nothing, or when it is stuck.
fn follow_drain(
    d: &mut Decision,
    state: &mut AutoscalerState,
    node: &ObservedNode,
    now: DateTime<Utc>,
) {
    let since = *state.draining_since.entry(node.id.clone()).or_insert(now);
    let why = node
        .heartbeat
        .as_ref()
        .and_then(|h| h.draining.clone())
        .unwrap_or_else(|| "requested".to_string());
    if node.is_quiet() || node.heartbeat.as_ref().is_some_and(|h| h.stopped) {
        terminate(d, node, format!("drained ({why})"));
    } else if now - since >= DRAIN_TIMEOUT {
        let n = node.tasks_in_flight();
        terminate(
            d,
            node,
            format!(
                "still draining after {} min ({why}); its {n} tasks go back to the queue",
                (now - since).num_minutes()
            ),
        );
    }
}

fn launch_reason(l: &TypeLoad, fraction: f64, min: u32, alive: u32, replaced: &[&str]) -> String {
    let mut parts = Vec::new();
    if l.overflow_queued + l.overflow_in_flight > 0 {
        let mut what = format!("{} CPU", num(l.overflow_cpu));
        if l.overflow_memory_gib > 0.0 {
            what.push_str(&format!(", {} GiB memory", num(l.overflow_memory_gib)));
        }
        let of = match (l.overflow_queued, l.overflow_in_flight) {
            (_, 0) => "queued demand",
            (0, _) => "running demand",
            _ => "queued and running demand",
        };
        let mut s = format!("{what} of {of}");
        if !l.overflow_labels.is_empty() {
            s.push_str(&format!(
                " needing {}",
                l.overflow_labels
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if fraction < 1.0 {
            s.push_str(&format!(" at target_utilization_fraction {fraction}"));
        }
        parts.push(s);
    }
    if min > alive {
        parts.push(format!("min_workers is {min}"));
    }
    if !replaced.is_empty() {
        parts.push(format!("replaces {}", replaced.join(", ")));
    }
    if parts.is_empty() {
        parts.push("planned capacity".to_string());
    }
    parts.join("; ")
}

/// Name what no worker type offers: a custom resource, enough CPU or memory, or the
/// combination.
fn why_infeasible(types: &[TypeCapacity], s: &Shape) -> String {
    if types.is_empty() {
        return "the spec has no worker node types".to_string();
    }
    for (name, q) in s.resources.iter() {
        let custom =
            name != fleetform_core::resources::CPU && name != fleetform_core::resources::MEMORY;
        if *q > 0.0
            && custom
            && !types
                .iter()
                .any(|t| t.custom.get(name).unwrap_or(0.0) >= *q)
        {
            return format!("no node type offers {name}");
        }
    }
    let best_cpu = types.iter().map(|t| t.cpu).fold(0.0, f64::max);
    if s.slots > best_cpu {
        return format!(
            "no node type has {} CPU (the largest has {})",
            num(s.slots),
            num(best_cpu)
        );
    }
    if s.memory_gib > 0.0 {
        let best = types
            .iter()
            .filter_map(|t| t.memory_gib)
            .fold(0.0, f64::max);
        if s.memory_gib > best {
            return format!(
                "no node type has {} GiB memory (the largest has {})",
                num(s.memory_gib),
                num(best)
            );
        }
    }
    format!("no single node type offers all of {}", s.resources)
}

/// 320 -> "320", 2.5 -> "2.5".
fn num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}
