//! Decision tests: pure, with time injected through `Observation::now` (no clock, no
//! sleeps, no tokio). Packing and the capacity cache have their own tests beside them.

use chrono::{DateTime, Duration, TimeZone, Utc};
use fleetform_core::resources::{Resources, CPU};
use fleetform_core::spec::{ClusterSpec, Market};
use fleetform_core::task::NodeHeartbeat;

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 21, 0, 0).unwrap()
}

fn at(min: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(min)
}

/// The workshop's shape: an on-demand head with `CPU: 0`, x86 (Intel) and Graviton
/// workers. `extra` is appended to the top level.
fn spec_with(x86: &str, arm: &str, top: &str) -> ClusterSpec {
    let y = format!(
        r#"
cluster_name: test
provider: {{type: aws, region: us-west-2, availability_zones: [us-west-2a, us-west-2b]}}
storage: {{bucket: test-bucket}}
idle_timeout_minutes: 5
{top}
head_node_type: head
available_node_types:
  head:
    resources: {{CPU: 0}}
    node_config: {{instance_types: [m7i.xlarge]}}
  x86:
    resources: {{CPU: 8, Intel: 1}}
    node_config: {{instance_types: [r7i.2xlarge], market: spot}}
    {x86}
  arm:
    resources: {{CPU: 8, Graviton: 1}}
    node_config: {{instance_types: [r8g.2xlarge], market: spot}}
    {arm}
"#
    );
    ClusterSpec::from_yaml("test.yaml", &y).unwrap_or_else(|d| panic!("{d}"))
}

/// Without headroom (fraction 1), so the numbers are plain bin-packing.
fn spec() -> ClusterSpec {
    spec_with("", "", "max_workers: 16\ntarget_utilization_fraction: 1.0")
}

fn cpu(n: f64) -> Resources {
    Resources::new().with(CPU, n)
}

fn demand(r: Resources, queued: u64, in_flight: u64) -> Demand {
    Demand { resources: r, queued, in_flight }
}

fn heartbeat(id: &str, node_type: &str, slots: usize, busy: usize, last_work: DateTime<Utc>, now: DateTime<Utc>) -> NodeHeartbeat {
    NodeHeartbeat {
        node_id: id.into(),
        node_type: node_type.into(),
        instance: id.into(),
        resources: cpu(slots as f64),
        slots,
        busy_slots: busy,
        tasks_in_flight: (0..busy).map(|i| format!("{id}-task-{i}")).collect(),
        leases: vec![],
        draining: None,
        scheduled_events: Vec::new(),
        last_work_at: last_work,
        started_at: at(-60),
        updated_at: now,
        tasks_done: 0,
        rows_done: 0,
        stopped: false,
        setup_failed: None,
    }
}

fn running(id: &str, node_type: &str, slots: usize, busy: usize, last_work: DateTime<Utc>, now: DateTime<Utc>) -> ObservedNode {
    ObservedNode {
        id: id.into(),
        node_type: node_type.into(),
        market: Market::Spot,
        instance_type: "r7i.2xlarge".into(),
        zone: Some("us-west-2a".into()),
        state: NodeState::Running,
        launched_at: at(-60),
        heartbeat: Some(heartbeat(id, node_type, slots, busy, last_work, now)),
    }
}

fn pending(id: &str, node_type: &str, since: DateTime<Utc>) -> ObservedNode {
    ObservedNode {
        id: id.into(),
        node_type: node_type.into(),
        market: Market::Spot,
        instance_type: "r7i.2xlarge".into(),
        zone: Some("us-west-2a".into()),
        state: NodeState::Pending { since },
        launched_at: since,
        heartbeat: None,
    }
}

fn head(now: DateTime<Utc>) -> ObservedNode {
    let mut h = running("i-head", "head", 0, 0, at(-600), now);
    h.market = Market::OnDemand;
    h.instance_type = "m7i.xlarge".into();
    h
}

fn obs(now: DateTime<Utc>, nodes: Vec<ObservedNode>, demand: Vec<Demand>) -> Observation {
    Observation { now, nodes, demand }
}

fn lines<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

// ---------------------------------------------------------------- bin-packing, C7

#[test]
fn graviton_demand_scales_only_graviton_nodes() {
    let s = spec();
    let mut st = AutoscalerState::new();
    let grav = cpu(1.0).with("Graviton", 1.0);
    let d = decide(&s, &obs(at(0), vec![head(at(0))], vec![demand(grav, 24, 0)]), &mut st);
    assert_eq!(lines(&d.launches), ["launch 3 arm: 24 CPU of queued demand needing Graviton"]);
    assert_eq!(d.launches[0].market, Market::Spot);
    assert_eq!(d.launches[0].offerings[0].to_string(), "r8g.2xlarge spot us-west-2a");
    assert!(d.terminations.is_empty() && d.drains.is_empty() && d.infeasible.is_empty());

    // Intel demand with Intel nodes already there: existing capacity absorbs it first.
    let intel = cpu(1.0).with("Intel", 1.0);
    let nodes = vec![running("i-x1", "x86", 8, 2, at(0), at(1))];
    let d = decide(&s, &obs(at(1), nodes, vec![demand(intel.clone(), 6, 2)]), &mut st);
    assert!(d.launches.is_empty(), "{:?}", d.explanations);
    let nodes = vec![running("i-x1", "x86", 8, 8, at(1), at(2))];
    let d = decide(&s, &obs(at(2), nodes, vec![demand(intel, 12, 8)]), &mut st);
    assert_eq!(lines(&d.launches), ["launch 2 x86: 12 CPU of queued demand needing Intel"]);
}

#[test]
fn demand_without_custom_resources_uses_either_type() {
    let s = spec();
    let mut st = AutoscalerState::new();
    let d = decide(&s, &obs(at(0), vec![], vec![demand(cpu(1.0), 16, 0)]), &mut st);
    // Equal in labels, cost and node count: the first type by name.
    assert_eq!(lines(&d.launches), ["launch 2 arm: 16 CPU of queued demand"]);
}

// ---------------------------------------------------------------- caps, C4

#[test]
fn per_type_and_cluster_max_workers_cap_launches() {
    let s = spec_with("max_workers: 2", "", "max_workers: 16\nupscaling_speed: 100\ntarget_utilization_fraction: 1.0");
    let mut st = AutoscalerState::new();
    let intel = cpu(1.0).with("Intel", 1.0);
    let d = decide(&s, &obs(at(0), vec![], vec![demand(intel, 100, 0)]), &mut st);
    assert_eq!(lines(&d.launches), ["launch 2 x86: 16 CPU of queued demand needing Intel"]);
    assert!(d.explanations.contains(&"84 tasks needing {CPU: 1, Intel: 1} wait: x86 is at max_workers 2".to_string()));

    // Cluster max 3 across both types.
    let s = spec_with("", "", "max_workers: 3\nupscaling_speed: 100\ntarget_utilization_fraction: 1.0");
    let mut st = AutoscalerState::new();
    let d = decide(&s, &obs(at(0), vec![], vec![demand(cpu(1.0), 100, 0)]), &mut st);
    assert_eq!(d.launched(), 3);
    assert!(d.explanations.iter().any(|l| l == "76 tasks needing {CPU: 1} wait: arm is at max_workers 3, the cluster is at max_workers 3"),
        "{:#?}", d.explanations);
}

#[test]
fn upscaling_speed_caps_pending_launches_per_type() {
    let s = spec_with("", "", "max_workers: 100\ntarget_utilization_fraction: 1.0");
    let mut st = AutoscalerState::new();
    // Nothing running: the floor of 5.
    let d = decide(&s, &obs(at(0), vec![], vec![demand(cpu(1.0).with("Intel", 1.0), 100, 0)]), &mut st);
    assert_eq!(
        lines(&d.launches),
        ["launch 5 x86: 100 CPU of queued demand needing Intel; 13 wanted, upscaling_speed 1 allows 5 pending with 0 running"]
    );
    // 5 pending already: nothing more until they run.
    let nodes: Vec<ObservedNode> = (0..5).map(|i| pending(&format!("i-p{i}"), "x86", at(0))).collect();
    let d = decide(&s, &obs(at(1), nodes, vec![demand(cpu(1.0).with("Intel", 1.0), 100, 0)]), &mut st);
    assert!(d.launches.is_empty());
    // 8 running, busy: speed 1 allows 8 pending.
    let nodes: Vec<ObservedNode> = (0..8).map(|i| running(&format!("i-r{i}"), "x86", 8, 8, at(2), at(2))).collect();
    let d = decide(&s, &obs(at(2), nodes, vec![demand(cpu(1.0).with("Intel", 1.0), 100, 64)]), &mut st);
    assert_eq!(d.launched(), 8);
    // min_workers may exceed the pending cap: 7 at once on an empty type.
    let s = spec_with("min_workers: 7", "", "max_workers: 100\ntarget_utilization_fraction: 1.0");
    let d = decide(&s, &obs(at(0), vec![], vec![]), &mut AutoscalerState::new());
    assert_eq!(lines(&d.launches), ["launch 7 x86: min_workers is 7"]);
}

// ---------------------------------------------------------------- idle scale-down

#[test]
fn idle_nodes_go_after_the_timeout_down_to_min_workers_never_the_head() {
    let s = spec_with("min_workers: 1", "", "max_workers: 16");
    let now = at(0);
    let nodes = vec![
        head(now),
        running("i-a", "x86", 8, 0, at(-10), now),
        running("i-b", "x86", 8, 0, at(-6), now),
        running("i-c", "x86", 8, 0, at(-2), now),
    ];
    let mut st = AutoscalerState::new();
    let d = decide(&s, &obs(now, nodes.clone(), vec![]), &mut st);
    assert_eq!(lines(&d.terminations), ["terminate i-a idle 10 min", "terminate i-b idle 6 min"]);
    assert!(d.explanations.contains(&"x86: 1 idle node not needed; the first reaches idle_timeout_minutes 5 at 21:03".to_string()));
    // min_workers 2: only one goes; the head, idle for ten hours, never.
    let s = spec_with("min_workers: 2", "", "max_workers: 16");
    let d = decide(&s, &obs(now, nodes.clone(), vec![]), &mut AutoscalerState::new());
    assert_eq!(lines(&d.terminations), ["terminate i-a idle 10 min"]);
    // Demand that needs the nodes keeps them.
    let d = decide(&s, &obs(now, nodes, vec![demand(cpu(1.0).with("Intel", 1.0), 20, 0)]), &mut AutoscalerState::new());
    assert!(d.terminations.is_empty());
}

#[test]
fn idle_node_still_holding_a_task_is_drained_not_terminated() {
    let s = spec();
    let now = at(0);
    // No busy slot for 10 minutes, but a task still leased (e.g. its upload).
    let mut holding = running("i-h", "x86", 8, 0, at(-10), now);
    holding.heartbeat.as_mut().unwrap().tasks_in_flight = vec!["job-1-task-7".into()];
    // Busy for a long time: not idle at all.
    let busy = running("i-busy", "x86", 8, 3, at(-30), now);
    let mut st = AutoscalerState::new();
    let d = decide(&s, &obs(now, vec![holding.clone(), busy], vec![demand(cpu(1.0), 0, 4)]), &mut st);
    assert!(d.terminations.is_empty());
    assert_eq!(lines(&d.drains), ["drain i-h idle 10 min; 1 task in flight"]);
    // Next round it is draining and done: terminated.
    holding.state = NodeState::Draining;
    holding.heartbeat.as_mut().unwrap().tasks_in_flight.clear();
    let d = decide(&s, &obs(at(1), vec![holding], vec![]), &mut st);
    assert_eq!(lines(&d.terminations), ["terminate i-h drained (requested)"]);
}

#[test]
fn over_max_workers_removes_idle_first_then_drains_busy() {
    let s = spec_with("max_workers: 2", "", "max_workers: 16");
    let now = at(0);
    let nodes = vec![
        running("i-1", "x86", 8, 8, at(0), now),
        running("i-2", "x86", 8, 0, at(-1), now),
        running("i-3", "x86", 8, 2, at(0), now),
        running("i-4", "x86", 8, 8, at(0), now),
    ];
    let d = decide(&s, &obs(now, nodes, vec![demand(cpu(1.0).with("Intel", 1.0), 0, 18)]), &mut AutoscalerState::new());
    assert_eq!(lines(&d.terminations), ["terminate i-2 over max_workers 2 for x86"]);
    assert_eq!(lines(&d.drains), ["drain i-3 over max_workers 2 for x86; 2 tasks in flight"]);
}

#[test]
fn cluster_cap_lowered_and_node_types_removed() {
    // Three busy x86 and two idle arm nodes under a cluster max of 3: two must go, the
    // idle ones first. A node of a type no longer in the spec is drained (busy) or
    // terminated (quiet).
    let s = spec_with("", "", "max_workers: 3\ntarget_utilization_fraction: 1.0");
    let now = at(0);
    let nodes = vec![
        running("i-x1", "x86", 8, 8, now, now),
        running("i-x2", "x86", 8, 8, now, now),
        running("i-x3", "x86", 8, 8, now, now),
        running("i-a1", "arm", 8, 0, at(-1), now),
        running("i-a2", "arm", 8, 0, at(-2), now),
        running("i-old", "gpu_worker", 8, 1, now, now),
        running("i-old2", "gpu_worker", 8, 0, at(-1), now),
    ];
    let d = decide(&s, &obs(now, nodes, vec![demand(cpu(1.0), 0, 24)]), &mut AutoscalerState::new());
    assert_eq!(
        lines(&d.terminations),
        [
            "terminate i-old2 node type `gpu_worker` is no longer in the spec",
            "terminate i-a2 over the cluster's max_workers 3",
            "terminate i-a1 over the cluster's max_workers 3",
        ]
    );
    assert_eq!(lines(&d.drains), ["drain i-old node type `gpu_worker` is no longer in the spec; 1 task in flight"]);
    assert!(d.launches.is_empty());
}

// ---------------------------------------------------------------- infeasible demand

#[test]
fn infeasible_demand_is_reported_once() {
    let s = spec();
    let mut st = AutoscalerState::new();
    let gpu = cpu(1.0).with("GPU", 1.0);
    let d = decide(&s, &obs(at(0), vec![], vec![demand(gpu.clone(), 4, 0)]), &mut st);
    assert_eq!(lines(&d.infeasible), ["cannot place 4 tasks needing {CPU: 1, GPU: 1}: no node type offers GPU"]);
    assert!(d.launches.is_empty());
    let d = decide(&s, &obs(at(1), vec![], vec![demand(gpu.clone(), 5, 0)]), &mut st);
    assert!(d.infeasible.is_empty() && d.launches.is_empty());
    assert_eq!(st.infeasible.len(), 1);
    assert_eq!(st.infeasible.values().next().unwrap().count, 5);
    // Gone, then back: reported again.
    decide(&s, &obs(at(2), vec![], vec![]), &mut st);
    assert!(st.infeasible.is_empty());
    let d = decide(&s, &obs(at(3), vec![], vec![demand(gpu, 4, 0)]), &mut st);
    assert_eq!(d.infeasible.len(), 1);
    // Too big for any node, and needing both labels at once.
    let d = decide(
        &s,
        &obs(at(4), vec![], vec![demand(cpu(64.0), 1, 0), demand(cpu(1.0).with("Intel", 1.0).with("Graviton", 1.0), 2, 0)]),
        &mut st,
    );
    assert_eq!(
        lines(&d.infeasible),
        [
            "cannot place 1 tasks needing {CPU: 64}: no node type has 64 CPU (the largest has 8)",
            "cannot place 2 tasks needing {CPU: 1, Graviton: 1, Intel: 1}: no single node type offers all of {CPU: 1, Graviton: 1, Intel: 1}",
        ]
    );
    let recent: Vec<&str> = st.recent(10).map(|h| h.line.as_str()).collect();
    assert_eq!(recent.iter().filter(|l| l.contains("GPU")).count(), 2);
}

// ---------------------------------------------------------------- capacity, C6

#[test]
fn stuck_launch_is_replaced_on_the_next_offering() {
    let s = spec();
    let mut st = AutoscalerState::new();
    let intel = cpu(1.0).with("Intel", 1.0);
    let d = decide(&s, &obs(at(10), vec![pending("i-p", "x86", at(0))], vec![demand(intel, 8, 0)]), &mut st);
    assert_eq!(lines(&d.terminations), ["terminate i-p pending 10 min"]);
    assert_eq!(
        d.decision_lines(),
        [
            "skip r7i.2xlarge spot us-west-2a: launch timed out until 21:13",
            "launch 1 x86: 8 CPU of queued demand needing Intel; replaces i-p",
            "terminate i-p pending 10 min",
        ]
    );
    assert_eq!(d.launches[0].offerings[0].to_string(), "r7i.2xlarge spot us-west-2b");
    assert_eq!(d.launches[0].offerings.last().unwrap().to_string(), "r7i.2xlarge on-demand us-west-2b");
}

#[test]
fn spot_shortage_falls_back_to_on_demand_or_holds() {
    let s = spec();
    let mut st = AutoscalerState::new();
    for z in ["us-west-2a", "us-west-2b"] {
        let o = Offering { market: Market::Spot, instance_type: "r7i.2xlarge".into(), zone: Some(z.into()) };
        st.launch_failed(at(0), o, CapacityError::InsufficientCapacity);
    }
    let intel = cpu(1.0).with("Intel", 1.0);
    let d = decide(&s, &obs(at(1), vec![], vec![demand(intel.clone(), 8, 0)]), &mut st);
    assert_eq!(d.launches[0].offerings[0].to_string(), "r7i.2xlarge on-demand us-west-2a");
    assert_eq!(d.launches[0].market, Market::Spot);
    assert_eq!(lines(&d.launches[0].skipped)[0], "skip r7i.2xlarge spot us-west-2a: insufficient capacity until 21:03");
    // After the TTL spot is first again.
    let d = decide(&s, &obs(at(3), vec![], vec![demand(intel.clone(), 8, 0)]), &mut st);
    assert_eq!(d.launches[0].offerings[0].to_string(), "r7i.2xlarge spot us-west-2a");
    assert!(d.explanations.contains(&"retry r7i.2xlarge spot us-west-2a: its insufficient capacity has expired".to_string()));

    // No fallback: hold, and say until when.
    let mut s = spec();
    s.available_node_types.get_mut("x86").unwrap().node_config.on_demand_fallback = false;
    let mut st = AutoscalerState::new();
    st.launch_failed(
        at(0),
        Offering { market: Market::Spot, instance_type: "r7i.2xlarge".into(), zone: None },
        CapacityError::SpotUnavailable,
    );
    let d = decide(&s, &obs(at(1), vec![], vec![demand(intel, 8, 0)]), &mut st);
    assert!(d.launches.is_empty());
    assert_eq!(lines(&d.blocked), ["hold 1 x86: every spot offering had a capacity error; retrying at 21:03"]);
}

#[test]
fn on_demand_base_comes_first() {
    let mut s = spec();
    s.available_node_types.get_mut("x86").unwrap().node_config.on_demand_base = 2;
    let intel = cpu(1.0).with("Intel", 1.0);
    let mut st = AutoscalerState::new();
    let d = decide(&s, &obs(at(0), vec![], vec![demand(intel.clone(), 32, 0)]), &mut st);
    assert_eq!(
        lines(&d.launches),
        [
            "launch 2 x86: 32 CPU of queued demand needing Intel (on-demand: on_demand_base 2)",
            "launch 2 x86: 32 CPU of queued demand needing Intel",
        ]
    );
    assert_eq!((d.launches[0].market, d.launches[1].market), (Market::OnDemand, Market::Spot));
    assert!(d.launches[0].offerings.iter().all(|o| o.market == Market::OnDemand));
    // With the base there, more nodes are spot.
    let mut base = running("i-od", "x86", 8, 8, at(1), at(1));
    base.market = Market::OnDemand;
    let mut base2 = base.clone();
    base2.id = "i-od2".into();
    let d = decide(&s, &obs(at(1), vec![base, base2], vec![demand(intel, 16, 16)]), &mut st);
    assert_eq!(d.launches.len(), 1);
    assert_eq!(d.launches[0].market, Market::Spot);
}

#[test]
fn silent_nodes_are_terminated_and_replaced() {
    // The default target_utilization_fraction 0.8: a node is planned full at 6.4 tasks.
    let s = spec_with("", "", "max_workers: 16");
    let now = at(0);
    let mut booting = running("i-boot", "x86", 8, 0, now, now);
    booting.heartbeat = None;
    booting.launched_at = at(-10);
    let mut lost = running("i-lost", "x86", 8, 8, at(-7), now);
    lost.heartbeat.as_mut().unwrap().updated_at = at(-6);
    let young = {
        let mut n = running("i-young", "x86", 8, 0, now, now);
        n.heartbeat = None;
        n.launched_at = at(-3);
        n
    };
    let d = decide(&s, &obs(now, vec![booting, lost, young], vec![demand(cpu(1.0).with("Intel", 1.0), 0, 8)]), &mut AutoscalerState::new());
    assert_eq!(lines(&d.terminations), ["terminate i-boot no heartbeat 10 min after launch", "terminate i-lost no heartbeat for 6 min"]);
    // i-young (booting, within grace) takes 6 of the 8 tasks at fraction 0.8; the other
    // 2 need one more node.
    assert_eq!(
        lines(&d.launches),
        ["launch 1 x86: 2 CPU of running demand needing Intel at target_utilization_fraction 0.8; replaces i-boot, i-lost"]
    );
}

#[test]
fn spot_interrupted_node_drains_is_replaced_then_terminated() {
    let s = spec_with("", "", "max_workers: 16\ntarget_utilization_fraction: 1.0");
    let mut st = AutoscalerState::new();
    let mut n = running("i-spot", "x86", 8, 8, at(0), at(0));
    n.heartbeat.as_mut().unwrap().draining = Some("spot-interruption".into());
    let intel = cpu(1.0).with("Intel", 1.0);
    let d = decide(&s, &obs(at(0), vec![n.clone()], vec![demand(intel.clone(), 0, 8)]), &mut st);
    assert_eq!(lines(&d.launches), ["launch 1 x86: 8 CPU of running demand needing Intel"]);
    assert!(d.terminations.is_empty());
    let hb = n.heartbeat.as_mut().unwrap();
    hb.busy_slots = 0;
    hb.tasks_in_flight.clear();
    hb.stopped = true;
    let d = decide(&s, &obs(at(1), vec![n], vec![demand(intel, 8, 0)]), &mut st);
    assert_eq!(lines(&d.terminations), ["terminate i-spot drained (spot-interruption)"]);
}

// ---------------------------------------------------------------- the seed scenario, C4

/// The workshop's exercise: ten 16-vCPU workers (160 vCPU) all busy with 160 one-CPU
/// tasks, 480 tasks in all (320 queued). Each round a minute apart: launches appear as
/// pending nodes, a round later they run and take queued tasks (16 each).
struct Seed {
    spec: ClusterSpec,
    state: AutoscalerState,
    nodes: Vec<ObservedNode>,
    queued: u64,
    in_flight: u64,
    now: DateTime<Utc>,
    launched_per_round: Vec<u32>,
    first: Option<(Decision, ClusterStatus)>,
}

fn seed_spec(max_workers: u32, speed: f64, fraction: f64) -> ClusterSpec {
    let y = format!(
        r#"
cluster_name: seed
provider: {{type: aws, region: us-west-2, availability_zones: [us-west-2a, us-west-2b]}}
storage: {{bucket: seed-bucket}}
max_workers: {max_workers}
upscaling_speed: {speed}
target_utilization_fraction: {fraction}
idle_timeout_minutes: 5
head_node_type: head
available_node_types:
  head:
    resources: {{CPU: 0}}
    node_config: {{instance_types: [m7i.xlarge], market: on-demand}}
  worker:
    resources: {{CPU: 16, Intel: 1}}
    min_workers: 10
    node_config: {{instance_types: [c7i.4xlarge], market: spot, on_demand_fallback: true}}
"#
    );
    ClusterSpec::from_yaml("seed.yaml", &y).unwrap_or_else(|d| panic!("{d}"))
}

impl Seed {
    fn new(max_workers: u32, speed: f64, fraction: f64) -> Seed {
        let now = at(0);
        let mut nodes = vec![head(now)];
        for i in 0..10 {
            let mut n = running(&format!("i-{i:04}"), "worker", 16, 16, now, now);
            n.instance_type = "c7i.4xlarge".into();
            nodes.push(n);
        }
        Seed {
            spec: seed_spec(max_workers, speed, fraction),
            state: AutoscalerState::new(),
            nodes,
            queued: 320,
            in_flight: 160,
            now,
            launched_per_round: Vec::new(),
            first: None,
        }
    }

    fn run(mut self) -> Seed {
        for _ in 0..30 {
            let o = obs(self.now, self.nodes.clone(), vec![demand(cpu(1.0), self.queued, self.in_flight)]);
            let d = decide(&self.spec, &o, &mut self.state);
            assert!(d.terminations.is_empty() && d.drains.is_empty(), "{:#?}", d.explanations);
            // Ray's rule holds after every round: pending <= max(5, speed x running).
            let running = self.nodes.iter().filter(|n| n.node_type == "worker" && n.heartbeat.is_some()).count() as u32;
            let booting = self.nodes.iter().filter(|n| n.node_type == "worker" && n.heartbeat.is_none()).count() as u32;
            let cap = 5.max((self.spec.upscaling_speed * running as f64).floor() as u32);
            assert!(booting + d.launched() <= cap, "{booting} pending + {} launched > {cap}", d.launched());
            self.launched_per_round.push(d.launched());
            for l in &d.launches {
                for _ in 0..l.count {
                    let id = format!("i-{:04}", self.nodes.len() - 1);
                    let mut n = pending(&id, "worker", self.now);
                    n.instance_type = l.offerings[0].instance_type.clone();
                    n.zone = l.offerings[0].zone.clone();
                    n.market = l.offerings[0].market;
                    self.nodes.push(n);
                }
            }
            if self.first.is_none() {
                let st = status(&self.spec, &o, &self.state, &d);
                self.first = Some((d.clone(), st));
            }
            let quiet = d.launches.is_empty() && self.nodes.iter().all(|n| n.heartbeat.is_some());
            if quiet {
                break;
            }
            // A minute later the pending nodes run and take queued work.
            self.now += Duration::minutes(1);
            for n in &mut self.nodes {
                if n.heartbeat.is_none() {
                    let take = self.queued.min(16);
                    self.queued -= take;
                    self.in_flight += take;
                    n.state = NodeState::Running;
                    let mut hb = heartbeat(&n.id, "worker", 16, take as usize, self.now, self.now);
                    hb.resources = cpu(16.0).with("Intel", 1.0);
                    n.heartbeat = Some(hb);
                } else if let Some(hb) = n.heartbeat.as_mut() {
                    hb.updated_at = self.now;
                    if hb.busy_slots > 0 {
                        hb.last_work_at = self.now;
                    }
                }
            }
        }
        self
    }

    fn total(&self) -> u32 {
        self.launched_per_round.iter().sum()
    }
}

#[test]
fn seed_480_tasks_on_160_vcpus_launch_20_more_nodes() {
    // Pure bin-packing (fraction 1), max_workers far above: exactly 20 more, in two
    // rounds of 10 (upscaling_speed 1 with 10, then 20, running).
    let s = Seed::new(128, 1.0, 1.0).run();
    assert_eq!(s.total(), 20);
    assert_eq!(s.launched_per_round, [10, 10, 0]);
    assert_eq!((s.queued, s.in_flight), (0, 480));
    let (d, _) = s.first.as_ref().unwrap();
    assert_eq!(
        lines(&d.launches),
        ["launch 10 worker: 320 CPU of queued demand; 20 wanted, upscaling_speed 1 allows 10 pending with 10 running"]
    );
    assert_eq!(d.launches[0].offerings[0].to_string(), "c7i.4xlarge spot us-west-2a");

    // The workshop's own settings: max_workers 30, fraction 0.8. Headroom wants 38
    // nodes (480 / (16 x 0.8) = 37.5); max_workers stops it at 30: 20 more.
    let s = Seed::new(30, 1.0, 0.8).run();
    assert_eq!(s.total(), 20);
    assert_eq!(s.launched_per_round, [10, 10, 0]);

    // A slower upscaling_speed: 5, then 7 (15 running x 0.5), then 8.
    let s = Seed::new(128, 0.5, 1.0).run();
    assert_eq!(s.launched_per_round, [5, 7, 8, 0]);
    assert_eq!(s.total(), 20);

    // A lower cap: 15 more, and the waiting demand is explained.
    let s = Seed::new(25, 1.0, 1.0).run();
    assert_eq!(s.total(), 15);
    assert_eq!(s.queued, 80);
    let (d, _) = s.first.as_ref().unwrap();
    assert!(d.explanations.contains(&"80 tasks needing {CPU: 1} wait: worker is at max_workers 25, the cluster is at max_workers 25".to_string()),
        "{:#?}", d.explanations);

    // Headroom with room to grow: 0.8 plans 38 nodes, 28 more.
    let s = Seed::new(128, 1.0, 0.8).run();
    assert_eq!(s.total(), 28);
}

#[test]
fn seed_status_shows_types_demand_and_reasons() {
    let s = Seed::new(30, 1.0, 0.8).run();
    let (_, st) = s.first.as_ref().unwrap();
    let text = st.to_string();
    println!("{text}");
    let json = serde_json::to_value(st).unwrap();
    assert_eq!(json["types"][1]["node_type"], "worker");
    assert_eq!(json["types"][1]["running"], 10);
    assert_eq!(json["types"][1]["desired"], 20);
    let row: Vec<&str> = text.lines().find(|l| l.starts_with("worker ")).unwrap().split_whitespace().collect();
    // Of the 320 queued, 224 are placed on worker; 96 wait for max_workers (explained).
    assert_eq!(row, ["worker", "10", "0", "0", "10", "0", "10", "30", "20", "160/160", "(100%)", "224", "160"]);
    assert!(text.contains("  96 tasks needing {CPU: 1} wait: worker is at max_workers 30, the cluster is at max_workers 30\n"));
    assert!(text.contains("  21:00:00 launch 10 worker: 256 CPU of queued and running demand at target_utilization_fraction 0.8; 20 wanted, upscaling_speed 1 allows 10 pending with 10 running"), "{text}");

    // And the end state, for the closing note.
    let o = obs(s.now, s.nodes.clone(), vec![demand(cpu(1.0), s.queued, s.in_flight)]);
    let mut state = s.state.clone();
    let d = decide(&s.spec, &o, &mut state);
    let end = status(&s.spec, &o, &state, &d).to_string();
    println!("{end}");
    assert!(end.contains("  worker: 30 running, 0 pending, 0 draining; 480 tasks (0 queued) need 38 nodes (min_workers 10); max_workers holds it at 30\n"));
}
