//! How long one autoscaler decision takes with 10,000 pending tasks (mixed shapes) and
//! 1,000 nodes (docs/DESIGN.md, decision 8: per-shape packing must stay fast at this size).
//! `cargo bench -p fleetform --bench decide`. Prints figures; it asserts nothing about
//! time.

use std::hint::black_box;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, TimeZone, Utc};
use fleetform::autoscaler::{decide, AutoscalerState, Demand, NodeState, Observation, ObservedNode};
use fleetform_core::resources::{Resources, CPU, MEMORY};
use fleetform_core::spec::{ClusterSpec, Market};
use fleetform_core::task::NodeHeartbeat;

const RUNS: usize = 200;

const SPEC: &str = r#"
cluster_name: bench
provider: {type: aws, region: us-west-2, availability_zones: [us-west-2a, us-west-2b, us-west-2c]}
network: {private_subnets: [10.0.16.0/20, 10.0.32.0/20, 10.0.48.0/20]}
storage: {bucket: bench-bucket}
max_workers: 2000
upscaling_speed: 1.0
target_utilization_fraction: 0.8
idle_timeout_minutes: 5
head_node_type: head
available_node_types:
  head:
    resources: {CPU: 0}
    node_config: {instance_types: [m7i.xlarge]}
  x86_small:
    resources: {CPU: 8, memory: 64, Intel: 1}
    max_workers: 600
    node_config: {instance_types: [r7i.2xlarge, m7i.2xlarge], market: spot}
  x86_large:
    resources: {CPU: 16, memory: 128, Intel: 1}
    max_workers: 600
    node_config: {instance_types: [c7i.4xlarge, m7i.4xlarge], market: spot, on_demand_base: 4}
  arm:
    resources: {CPU: 16, memory: 128, Graviton: 1}
    max_workers: 600
    node_config: {instance_types: [c7g.4xlarge, r8g.4xlarge], market: spot}
  highmem:
    resources: {CPU: 8, memory: 256}
    max_workers: 200
    node_config: {instance_types: [r7i.8xlarge]}
"#;

fn main() {
    let spec = ClusterSpec::from_yaml("bench.yaml", SPEC).unwrap_or_else(|d| panic!("{d}"));
    let now = Utc.with_ymd_and_hms(2025, 6, 1, 21, 0, 0).unwrap();
    let types = ["x86_small", "x86_large", "arm", "highmem"];
    let slots = [8usize, 16, 16, 8];

    // 1,000 nodes: mostly running (busy, some idle for a while), some pending, a few draining.
    let mut nodes = Vec::with_capacity(1001);
    for i in 0..1000usize {
        let t = i % types.len();
        let id = format!("i-{i:017x}");
        let state = match i % 50 {
            0..=4 => NodeState::Pending { since: now - Duration::minutes((i % 7) as i64) },
            5 => NodeState::Draining,
            _ => NodeState::Running,
        };
        let busy = if i % 10 == 7 { 0 } else { slots[t] - (i % 3) };
        let heartbeat = (!matches!(state, NodeState::Pending { .. })).then(|| NodeHeartbeat {
            node_id: id.clone(),
            node_type: types[t].into(),
            instance: id.clone(),
            resources: Resources::new().with(CPU, slots[t] as f64),
            slots: slots[t],
            busy_slots: busy,
            tasks_in_flight: (0..busy).map(|k| format!("job-{i}-{k}")).collect(),
            leases: vec![],
            draining: None,
            scheduled_events: Vec::new(),
            last_work_at: now - Duration::minutes(if busy == 0 { (i % 11) as i64 } else { 0 }),
            started_at: now - Duration::hours(1),
            updated_at: now,
            tasks_done: 0,
            rows_done: 0,
            stopped: false,
            setup_failed: None,
        });
        nodes.push(ObservedNode {
            id,
            node_type: types[t].into(),
            market: if i % 5 == 0 { Market::OnDemand } else { Market::Spot },
            instance_type: "c7i.4xlarge".into(),
            zone: Some(["us-west-2a", "us-west-2b", "us-west-2c"][i % 3].into()),
            state,
            launched_at: now - Duration::hours(1),
            heartbeat,
        });
    }

    // 10,000 pending tasks in 12 shapes, plus what is in flight.
    let shapes: Vec<Resources> = vec![
        Resources::new().with(CPU, 1.0),
        Resources::new().with(CPU, 2.0),
        Resources::new().with(CPU, 4.0),
        Resources::new().with(CPU, 1.0).with("Intel", 1.0),
        Resources::new().with(CPU, 2.0).with("Intel", 1.0),
        Resources::new().with(CPU, 1.0).with("Graviton", 1.0),
        Resources::new().with(CPU, 4.0).with("Graviton", 1.0),
        Resources::new().with(CPU, 1.0).with(MEMORY, 16.0),
        Resources::new().with(CPU, 2.0).with(MEMORY, 96.0),
        Resources::new().with(CPU, 1.0).with(MEMORY, 8.0).with("Intel", 1.0),
        Resources::new().with(CPU, 8.0),
        Resources::new().with(CPU, 1.0).with("GPU", 1.0), // infeasible
    ];
    let per = 10_000 / shapes.len() as u64;
    let mut demand: Vec<Demand> =
        shapes.iter().map(|r| Demand { resources: r.clone(), queued: per, in_flight: 900 }).collect();
    demand[0].queued += 10_000 - per * shapes.len() as u64;
    let obs = Observation { now, nodes, demand };
    let queued: u64 = obs.demand.iter().map(|d| d.queued).sum();

    // Warm up, and show what the decision is.
    let mut state = AutoscalerState::new();
    let d = decide(&spec, &obs, &mut state);
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let mut st = AutoscalerState::new();
        let start = Instant::now();
        let d = decide(black_box(&spec), black_box(&obs), &mut st);
        times.push(start.elapsed());
        black_box(d);
    }
    times.sort();
    let ms = |d: StdDuration| d.as_secs_f64() * 1e3;
    println!(
        "decide: {} nodes, {} queued tasks in {} shapes, {} worker types",
        obs.nodes.len(),
        queued,
        obs.demand.len(),
        types.len()
    );
    println!(
        "  {} runs: median {:.3} ms, min {:.3} ms, max {:.3} ms",
        RUNS,
        ms(times[RUNS / 2]),
        ms(times[0]),
        ms(times[RUNS - 1])
    );
    println!(
        "  decision: {} nodes launched in {} launches, {} terminations, {} drains, {} infeasible, {} explanation lines",
        d.launched(),
        d.launches.len(),
        d.terminations.len(),
        d.drains.len(),
        d.infeasible.len(),
        d.explanations.len()
    );
}
