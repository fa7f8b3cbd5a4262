//! Bin-packing of demand onto node types, per resource shape with counts (never per
//! task), so 10,000 tasks cost what 10 shapes cost.
//!
//! The model, as the agent runs work:
//! - a node of a type has `CPU` slots and (if known) memory; a task takes
//!   `max(1, ceil(CPU))` slots and its `memory`;
//! - custom resources (`Intel`, `Graviton`) are *labels*, not consumed: a task needing
//!   `{Graviton: 1}` runs only on a node offering `Graviton >= 1`, on any of its slots
//!   (the agent serves its resource classes' queues with all its slots);
//! - `target_utilization_fraction` plans headroom: a node counts as full at that fraction
//!   of its slots, so capacity = demand / fraction, rounded up to whole nodes.
//!
//! Shapes with the fewest candidate types are placed first (so flexible demand does not
//! take the capacity only some types can give). For each shape, tasks in flight are put
//! where slots are busy (the heartbeats say which types run work), so the type really
//! running them keeps its nodes and another type's idle nodes can go; then queued tasks
//! fill room on planned nodes (existing, pending, or kept for `min_workers`); then nodes
//! are opened on the type that wastes least, within the per-type and cluster
//! `max_workers`.

use std::collections::BTreeSet;

use fleetform_core::instance::facts;
use fleetform_core::resources::{Resources, CPU, MEMORY};
use fleetform_core::spec::ClusterSpec;

use super::model::Demand;

/// Slack for floating-point node fractions (tasks are integers, nodes hold at most a few
/// hundred slots, so any real difference is far above this).
const EPS: f64 = 1e-9;

/// What one node of a type offers, as the packer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeCapacity {
    pub node_type: String,
    /// Task slots per node: the type's `CPU`, else its smallest instance type's vCPUs
    /// (local provider without either: this machine's cores).
    pub cpu: f64,
    /// GiB per node: the type's `memory`, else its smallest instance type's memory.
    /// None when neither says: then no task needing memory fits.
    pub memory_gib: Option<f64>,
    /// Custom resources (labels) the type offers.
    pub custom: Resources,
    /// What one node costs, in vCPUs (the price proxy when choosing a type).
    pub vcpus: f64,
}

impl TypeCapacity {
    pub fn of(spec: &ClusterSpec, node_type: &str) -> TypeCapacity {
        let t = &spec.available_node_types[node_type];
        let offer = spec.node_offer(node_type);
        let min_vcpus = t.node_config.instance_types.iter().filter_map(|i| facts(i)).map(|f| f.vcpus as f64).reduce(f64::min);
        let cpu = offer.get(CPU).unwrap_or(0.0);
        let custom = Resources(offer.iter().filter(|(k, _)| *k != CPU && *k != MEMORY).map(|(k, v)| (k.clone(), *v)).collect());
        TypeCapacity { node_type: node_type.to_string(), cpu, memory_gib: offer.get(MEMORY), custom, vcpus: min_vcpus.unwrap_or(cpu) }
    }

    /// How many tasks of `shape` one node runs at once; 0 when it cannot run one.
    pub fn fits(&self, shape: &Shape) -> u32 {
        for (name, q) in shape.resources.iter() {
            if name != CPU && name != MEMORY && *q > 0.0 && self.custom.get(name).unwrap_or(0.0) < *q {
                return 0;
            }
        }
        let mut k = (self.cpu / shape.slots + EPS).floor();
        if shape.memory_gib > 0.0 {
            match self.memory_gib {
                Some(m) => k = k.min((m / shape.memory_gib + EPS).floor()),
                None => return 0,
            }
        }
        if k >= 1.0 {
            k as u32
        } else {
            0
        }
    }

    /// Custom labels the type has that `shape` does not ask for (kept for demand that
    /// needs them, as Ray keeps GPU nodes for GPU tasks).
    fn extra_labels(&self, shape: &Shape) -> usize {
        self.custom.iter().filter(|(k, q)| **q > 0.0 && shape.resources.get(k).unwrap_or(0.0) <= 0.0).count()
    }
}

/// One resource shape of demand, ready to pack.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub resources: Resources,
    /// Slots one task takes.
    pub slots: f64,
    pub memory_gib: f64,
    pub queued: u64,
    pub in_flight: u64,
}

impl Shape {
    pub fn of(d: &Demand) -> Shape {
        Shape {
            resources: d.resources.clone(),
            slots: d.resources.cpu().ceil().max(1.0),
            memory_gib: d.resources.get(MEMORY).unwrap_or(0.0).max(0.0),
            queued: d.queued,
            in_flight: d.in_flight,
        }
    }
    pub fn tasks(&self) -> u64 {
        self.queued + self.in_flight
    }
    /// Merge demand entries of the same resources (queues of one class, heartbeats).
    pub fn merge(demand: &[Demand]) -> Vec<Shape> {
        let mut out: Vec<Shape> = Vec::new();
        for d in demand {
            match out.iter_mut().find(|s| s.resources == d.resources) {
                Some(s) => {
                    s.queued += d.queued;
                    s.in_flight += d.in_flight;
                }
                None => out.push(Shape::of(d)),
            }
        }
        out
    }
}

/// The packer's input: node types and what is already planned for each.
#[derive(Debug, Clone)]
pub struct PackInput<'a> {
    pub types: &'a [TypeCapacity],
    /// Nodes that exist (running or pending, not draining), per type.
    pub alive: &'a [u32],
    /// Busy slots on those nodes (from heartbeats), per type.
    pub busy_slots: &'a [u64],
    pub min_workers: &'a [u32],
    pub max_workers: &'a [u32],
    pub cluster_max: u32,
    pub fraction: f64,
}

/// The demand placed on one node type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeLoad {
    /// Planned nodes: max(alive, min_workers), plus nodes opened for demand.
    pub nodes: u32,
    /// Node-units of demand placed, headroom included (fractional).
    pub used: f64,
    pub queued: u64,
    pub in_flight: u64,
    /// Demand that did not fit on the nodes that exist: it is what launches nodes.
    pub overflow_queued: u64,
    pub overflow_in_flight: u64,
    pub overflow_cpu: f64,
    pub overflow_memory_gib: f64,
    /// Custom resources asked for by the overflowing demand.
    pub overflow_labels: BTreeSet<String>,
}

impl TypeLoad {
    /// Whole nodes the placed demand needs.
    pub fn needed(&self) -> u32 {
        (self.used - EPS).ceil().max(0.0) as u32
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnplacedWhy {
    /// No node type can run it at all.
    NoNodeType,
    /// Node types could, but they are at `max_workers` (per type or cluster).
    Capped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unplaced {
    /// Index into the shapes given to [`pack`].
    pub shape: usize,
    pub tasks: u64,
    pub why: UnplacedWhy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Packing {
    /// Per type, in the order of `PackInput::types`.
    pub loads: Vec<TypeLoad>,
    pub unplaced: Vec<Unplaced>,
}

pub fn pack(input: &PackInput<'_>, shapes: &[Shape]) -> Packing {
    let loads: Vec<TypeLoad> = (0..input.types.len())
        .map(|t| TypeLoad { nodes: input.alive[t].max(input.min_workers[t]), ..TypeLoad::default() })
        .collect();
    let total = loads.iter().map(|l| l.nodes).sum();
    let mut p = Packer { input, f: input.fraction.clamp(EPS, 1.0), loads, total, busy: input.busy_slots.to_vec() };
    let mut unplaced = Vec::new();
    for (si, mut cands) in shape_order(input, shapes) {
        let s = &shapes[si];
        if cands.is_empty() {
            unplaced.push(Unplaced { shape: si, tasks: s.tasks(), why: UnplacedWhy::NoNodeType });
            continue;
        }
        p.rank(s, &mut cands);
        let mut left = Left { in_flight: s.in_flight, queued: s.queued };
        p.in_flight_where_busy(s, &cands, &mut left);
        p.fill_planned(s, &cands, &mut left);
        p.open_nodes(s, &cands, &mut left);
        if left.total() > 0 {
            unplaced.push(Unplaced { shape: si, tasks: left.total(), why: UnplacedWhy::Capped });
        }
    }
    Packing { loads: p.loads, unplaced }
}

/// Each shape with the types that fit it (and how many of its tasks a node takes), most
/// constrained first.
fn shape_order(input: &PackInput<'_>, shapes: &[Shape]) -> Vec<(usize, Vec<(usize, u32)>)> {
    let mut order: Vec<(usize, Vec<(usize, u32)>)> = shapes
        .iter()
        .enumerate()
        .filter(|(_, s)| s.tasks() > 0)
        .map(|(i, s)| {
            let c = input.types.iter().enumerate().filter_map(|(t, ty)| Some((t, ty.fits(s))).filter(|x| x.1 > 0));
            (i, c.collect())
        })
        .collect();
    order.sort_by(|(a, ca), (b, cb)| {
        let (sa, sb) = (&shapes[*a], &shapes[*b]);
        ca.len()
            .cmp(&cb.len())
            .then(sb.slots.total_cmp(&sa.slots))
            .then(sb.memory_gib.total_cmp(&sa.memory_gib))
            .then_with(|| sa.resources.to_string().cmp(&sb.resources.to_string()))
    });
    order
}

/// The plan being built: nodes and load per type, the cluster's node total, and the busy
/// slots not yet given to tasks in flight.
struct Packer<'i, 'a> {
    input: &'i PackInput<'a>,
    /// The target fraction of each node's capacity.
    f: f64,
    loads: Vec<TypeLoad>,
    total: u32,
    busy: Vec<u64>,
}

impl Packer<'_, '_> {
    /// Prefer types without labels the shape does not need, then the fewest vCPUs bought
    /// for this demand (least waste, cheapest), then fewer nodes, then name.
    fn rank(&self, s: &Shape, cands: &mut [(usize, u32)]) {
        let n = s.tasks() as f64;
        let types = &self.input.types;
        cands.sort_by(|&(ta, ka), &(tb, kb)| {
            let key = |t: usize, k: u32| {
                let nodes = (n / (k as f64 * self.f) - EPS).ceil();
                (types[t].extra_labels(s), nodes * types[t].vcpus, nodes)
            };
            let (a, b) = (key(ta, ka), key(tb, kb));
            a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.total_cmp(&b.2)).then(ta.cmp(&tb))
        });
    }

    /// Nodes type `t` may still open under its own cap and the cluster's.
    fn room(&self, t: usize) -> u32 {
        self.input.max_workers[t].saturating_sub(self.loads[t].nodes).min(self.input.cluster_max.saturating_sub(self.total))
    }

    fn open(&mut self, t: usize, n: u32) {
        self.loads[t].nodes += n;
        self.total += n;
    }

    /// Pass 0: tasks in flight go where slots are busy, most busy type first. At a
    /// fraction below 1 that can fill nodes past the target: plan the headroom nodes.
    fn in_flight_where_busy(&mut self, s: &Shape, cands: &[(usize, u32)], left: &mut Left) {
        let mut by_busy = cands.to_vec();
        by_busy.sort_by_key(|&(t, _)| std::cmp::Reverse(self.busy[t]));
        for (t, k) in by_busy {
            if left.in_flight == 0 {
                break;
            }
            let take = left.in_flight.min(self.busy[t] / s.slots as u64);
            self.busy[t] -= take * s.slots as u64;
            place(&mut self.loads[t], self.input.alive[t], s, k as f64 * self.f, take, left);
            let open = ((self.loads[t].used - EPS).ceil().max(0.0) as u32).saturating_sub(self.loads[t].nodes).min(self.room(t));
            self.open(t, open);
        }
    }

    /// Pass 1: room on nodes already planned.
    fn fill_planned(&mut self, s: &Shape, cands: &[(usize, u32)], left: &mut Left) {
        for &(t, k) in cands {
            if left.total() == 0 {
                break;
            }
            self.take_free(t, s, k as f64 * self.f, left);
        }
    }

    /// Pass 2: open nodes, best type first, within the caps.
    fn open_nodes(&mut self, s: &Shape, cands: &[(usize, u32)], left: &mut Left) {
        for &(t, k) in cands {
            if left.total() == 0 {
                break;
            }
            let per_node = k as f64 * self.f;
            let l = &self.loads[t];
            let want = (l.used + left.total() as f64 / per_node - l.nodes as f64 - EPS).ceil().max(0.0) as u32;
            self.open(t, want.min(self.room(t)));
            self.take_free(t, s, per_node, left);
        }
    }

    /// Place as many of the tasks left as the free capacity of type `t`'s planned nodes takes.
    fn take_free(&mut self, t: usize, s: &Shape, per_node: f64, left: &mut Left) {
        let free = self.loads[t].nodes as f64 - self.loads[t].used;
        let take = left.total().min(((free * per_node) + EPS).floor().max(0.0) as u64);
        place(&mut self.loads[t], self.input.alive[t], s, per_node, take, left);
    }
}

struct Left {
    in_flight: u64,
    queued: u64,
}

impl Left {
    fn total(&self) -> u64 {
        self.in_flight + self.queued
    }
}

/// Put `take` tasks of `s` on type load `l`; in-flight tasks first (they already run, on
/// nodes that exist), then queued ones. What lands beyond the `alive` nodes overflows.
fn place(l: &mut TypeLoad, alive: u32, s: &Shape, per_node: f64, take: u64, left: &mut Left) {
    if take == 0 {
        return;
    }
    let alive_room = (((alive as f64 - l.used).max(0.0) * per_node) + EPS).floor() as u64;
    let in_flight = take.min(left.in_flight);
    let queued = take - in_flight;
    left.in_flight -= in_flight;
    left.queued -= queued;
    l.in_flight += in_flight;
    l.queued += queued;
    l.used += take as f64 / per_node;
    let overflow = take.saturating_sub(alive_room);
    if overflow > 0 {
        let over_queued = overflow.min(queued);
        l.overflow_queued += over_queued;
        l.overflow_in_flight += overflow - over_queued;
        l.overflow_cpu += overflow as f64 * s.resources.cpu().max(0.0);
        l.overflow_memory_gib += overflow as f64 * s.memory_gib;
        l.overflow_labels.extend(s.resources.custom_names().iter().map(|n| n.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(name: &str, cpu: f64, custom: &[&str]) -> TypeCapacity {
        let mut r = Resources::new();
        for c in custom {
            r = r.with(c, 1.0);
        }
        TypeCapacity { node_type: name.into(), cpu, memory_gib: Some(cpu * 8.0), custom: r, vcpus: cpu }
    }

    fn shape(r: Resources, queued: u64, in_flight: u64) -> Shape {
        Shape::of(&Demand { resources: r, queued, in_flight })
    }

    fn run(types: &[TypeCapacity], alive: &[u32], max: &[u32], cluster_max: u32, f: f64, shapes: &[Shape]) -> Packing {
        // Every alive node busy, as far as the in-flight tasks go.
        let busy: Vec<u64> = types.iter().zip(alive).map(|(t, a)| (*a as f64 * t.cpu) as u64).collect();
        run_busy(types, alive, &busy, max, cluster_max, f, shapes)
    }

    fn run_busy(
        types: &[TypeCapacity],
        alive: &[u32],
        busy: &[u64],
        max: &[u32],
        cluster_max: u32,
        f: f64,
        shapes: &[Shape],
    ) -> Packing {
        let min = vec![0; types.len()];
        let input =
            PackInput { types, alive, busy_slots: busy, min_workers: &min, max_workers: max, cluster_max, fraction: f };
        pack(&input, shapes)
    }

    #[test]
    fn custom_resources_scale_only_their_types() {
        let types = [ty("arm", 8.0, &["Graviton"]), ty("x86", 8.0, &["Intel"])];
        let grav = Resources::new().with(CPU, 1.0).with("Graviton", 1.0);
        let intel = Resources::new().with(CPU, 1.0).with("Intel", 1.0);
        let p = run(&types, &[0, 0], &[8, 8], 16, 1.0, &[shape(grav.clone(), 24, 0)]);
        assert_eq!((p.loads[0].nodes, p.loads[1].nodes), (3, 0));
        assert_eq!(p.loads[0].overflow_cpu, 24.0);
        assert!(p.loads[0].overflow_labels.contains("Graviton"));
        let p = run(&types, &[0, 0], &[8, 8], 16, 1.0, &[shape(intel, 9, 0), shape(grav, 1, 0)]);
        assert_eq!((p.loads[0].nodes, p.loads[1].nodes), (1, 2));
        // A task needing a label nobody offers is not placed anywhere.
        let gpu = Resources::new().with(CPU, 1.0).with("GPU", 1.0);
        let p = run(&types, &[0, 0], &[8, 8], 16, 1.0, &[shape(gpu, 5, 0)]);
        assert_eq!(p.unplaced, vec![Unplaced { shape: 0, tasks: 5, why: UnplacedWhy::NoNodeType }]);
        assert_eq!(p.loads.iter().map(|l| l.nodes).sum::<u32>(), 0);
    }

    #[test]
    fn labelled_demand_goes_first_and_flexible_demand_spills_over_caps() {
        // Default-class tasks can use both types; Graviton tasks only arm. The Graviton
        // demand is placed first, the default demand fills what is left, then x86.
        let types = [ty("arm", 8.0, &["Graviton"]), ty("x86", 8.0, &["Intel"])];
        let grav = Resources::new().with(CPU, 1.0).with("Graviton", 1.0);
        let cpu = Resources::new().with(CPU, 1.0);
        let p = run(&types, &[0, 0], &[4, 8], 12, 1.0, &[shape(cpu, 60, 0), shape(grav, 20, 0)]);
        assert_eq!((p.loads[0].nodes, p.loads[1].nodes), (4, 6));
        assert_eq!((p.loads[0].queued, p.loads[1].queued), (32, 48));
        assert!(p.unplaced.is_empty());
    }

    #[test]
    fn least_waste_then_cheapest() {
        let types = [ty("big", 16.0, &[]), ty("small", 4.0, &[])];
        let cpu = Resources::new().with(CPU, 1.0);
        // 3 tasks: one 4-vCPU node, not a 16-vCPU one.
        let p = run(&types, &[0, 0], &[10, 10], 20, 1.0, &[shape(cpu.clone(), 3, 0)]);
        assert_eq!((p.loads[0].nodes, p.loads[1].nodes), (0, 1));
        // 64 tasks: equal vCPUs either way; fewer nodes wins.
        let p = run(&types, &[0, 0], &[10, 10], 20, 1.0, &[shape(cpu.clone(), 64, 0)]);
        assert_eq!((p.loads[0].nodes, p.loads[1].nodes), (4, 0));
        // 6-CPU tasks: two per 16-vCPU node, none on 4 vCPUs.
        let six = Resources::new().with(CPU, 6.0);
        let p = run(&types, &[0, 0], &[10, 10], 20, 1.0, &[shape(six, 5, 0)]);
        assert_eq!((p.loads[0].nodes, p.loads[1].nodes), (3, 0));
        // Memory binds: 1 CPU + 64 GiB tasks fit two per 16-vCPU (128 GiB) node.
        let mem = Resources::new().with(CPU, 1.0).with(MEMORY, 64.0);
        let p = run(&types, &[0, 0], &[10, 10], 20, 1.0, &[shape(mem, 6, 0)]);
        assert_eq!(p.loads[0].nodes, 3);
    }

    #[test]
    fn tasks_in_flight_stay_where_slots_are_busy() {
        // Default-class tasks run on x86 (busy); arm nodes are idle. The in-flight work is
        // put on x86, so arm's idle nodes are not needed.
        let types = [ty("arm", 8.0, &["Graviton"]), ty("x86", 8.0, &["Intel"])];
        let cpu = Resources::new().with(CPU, 1.0);
        let p = run_busy(&types, &[2, 3], &[0, 24], &[8, 8], 16, 1.0, &[shape(cpu.clone(), 0, 24)]);
        assert_eq!((p.loads[0].needed(), p.loads[1].needed()), (0, 3));
        // At 0.8 the busy x86 nodes are past the target: headroom opens one more.
        let p = run_busy(&types, &[2, 3], &[0, 24], &[8, 8], 16, 0.8, &[shape(cpu, 0, 24)]);
        assert_eq!((p.loads[0].nodes, p.loads[1].nodes), (2, 4));
        assert_eq!((p.loads[1].overflow_in_flight, p.loads[1].overflow_cpu), (5, 5.0)); // 3 x 6.4 = 19 fit
    }

    #[test]
    fn existing_capacity_absorbs_first_and_headroom_rounds_up() {
        let types = [ty("w", 16.0, &[])];
        let cpu = Resources::new().with(CPU, 1.0);
        // Ten nodes busy with 160, 320 more queued: 20 more nodes at fraction 1.
        let p = run(&types, &[10], &[1000], 1000, 1.0, &[shape(cpu.clone(), 320, 160)]);
        assert_eq!(p.loads[0].nodes, 30);
        assert_eq!((p.loads[0].overflow_queued, p.loads[0].overflow_in_flight), (320, 0));
        // At 0.8, 480 tasks need 480 / 12.8 = 37.5 -> 38 nodes.
        let p = run(&types, &[10], &[1000], 1000, 0.8, &[shape(cpu.clone(), 320, 160)]);
        assert_eq!(p.loads[0].nodes, 38);
        assert_eq!(p.loads[0].needed(), 38);
        // Capped: cluster max 30 leaves 96 tasks unplaced (30 nodes x 12.8 = 384).
        let p = run(&types, &[10], &[1000], 30, 0.8, &[shape(cpu.clone(), 320, 160)]);
        assert_eq!(p.loads[0].nodes, 30);
        assert_eq!(p.unplaced, vec![Unplaced { shape: 0, tasks: 96, why: UnplacedWhy::Capped }]);
        // Idle nodes: 20 tasks need 2 of the 10.
        let p = run(&types, &[10], &[1000], 1000, 1.0, &[shape(cpu, 0, 20)]);
        assert_eq!((p.loads[0].nodes, p.loads[0].needed(), p.loads[0].overflow_cpu), (10, 2, 0.0));
    }
}
