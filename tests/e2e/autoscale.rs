//! The autoscaler wired to its providers (issue 5): on moto, queued demand launches
//! instances of the right node type and market, an injected capacity shortage falls back
//! to on-demand, idle nodes are terminated; locally, agents come and go with the work.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fleetform::autoscaler::run::{aws_round, Persisted};
use fleetform::aws::nodes::CapacityShortage;
use fleetform::aws::{observe, ContextOptions};
use fleetform_agent::queue::{sqs::SqsQueue, Queue};
use fleetform_agent::store::Store;
use fleetform_core::layout;
use fleetform_core::spec::Market;
use fleetform_core::queue::TaskQueue;
use fleetform_core::task::{HeldLease, NodeHeartbeat};
use fleetform_core::{ClusterSpec, JobSpec, Resources};

use crate::aws_reconcile::{connect, run, runtime, Fixture};
use crate::harness::{wait_until, LocalEnv};
use crate::moto::Moto;

/// Demand only: nothing runs these tasks on moto (no agents), so the output location
/// is a local directory.
fn intel_job(tasks: u64, out: &std::path::Path) -> JobSpec {
    JobSpec::from_yaml(
        "intel.yaml",
        &format!(
            "name: intel\ninput: {{generate: {{rows: {tasks}, text_length: 10}}}}\noutput: {{uri: {}}}\n\
             split: {{rows_per_task: 1}}\nresources: {{CPU: 1, Intel: 1}}\n",
            out.display()
        ),
    )
    .unwrap()
}

#[test]
fn aws_demand_launches_the_right_type_falls_back_and_scales_idle_nodes_down() {
    let moto = Moto::start();
    let f = Fixture::new("asg", 0);
    let (code, _) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0);
    runtime().block_on(async {
        let config = moto.sdk_config().await;
        let spec = ClusterSpec::load(&f.spec).unwrap();
        let store = Store { loc: fleetform_agent::storage::open_with(&config, "s3://fleetform-asg-data/asg").await.unwrap() };
        let queue = Queue::Sqs(SqsQueue::new(&config, "asg"));
        let job = fleetform_agent::jobs::submit(&store, &queue, intel_job(20, &f.dir.path().join("out1"))).await.unwrap();

        // 1. Intel demand scales the Intel (x86) type, on spot.
        let ctx = connect(&moto, &f, ContextOptions::default()).await;
        let before: Vec<_> = observe::instances(&ctx, Some("x86_worker_node")).await.unwrap().into_iter().filter(|i| i.is_active()).collect();
        assert!(before.is_empty());
        let mut persisted = Persisted::default();
        let d = aws_round(&ctx, &spec, &store, &queue, &mut persisted).await.unwrap();
        let launch = d.launches.iter().find(|l| l.node_type == "x86_worker_node").expect("an x86 launch");
        assert!(launch.reason.contains("CPU of queued"), "{}", launch.reason);
        assert!(d.launches.iter().all(|l| l.node_type != "arm_worker_node"), "Intel demand must not scale Graviton: {:?}", d.launches);
        let x86: Vec<_> = observe::instances(&ctx, Some("x86_worker_node")).await.unwrap().into_iter().filter(|i| i.is_active()).collect();
        assert_eq!(x86.len() as u32, launch.count);
        assert!(x86.iter().all(|i| i.spot), "spot node type launches spot");

        // 2. No spot capacity anywhere (injected at the EC2 boundary): on-demand fallback,
        //    and the failed offerings are cached and explained.
        let faults = CapacityShortage::new().offering(Some(Market::Spot), None, None);
        let ctx2 = connect(&moto, &f, ContextOptions { faults: Arc::new(faults), ..Default::default() }).await;
        let spec_more = ClusterSpec::from_yaml("more", &std::fs::read_to_string(&f.spec).unwrap().replace("max_workers: 4\n    node_config: {instance_types: [r7i", "max_workers: 8\n    node_config: {instance_types: [r7i")).unwrap();
        fleetform_agent::jobs::submit(&store, &queue, intel_job(200, &f.dir.path().join("out2"))).await.unwrap();
        let d2 = aws_round(&ctx2, &spec_more, &store, &queue, &mut persisted).await.unwrap();
        assert!(!d2.launches.is_empty(), "{:?}", d2.explanations);
        let all: Vec<_> = observe::instances(&ctx2, Some("x86_worker_node")).await.unwrap().into_iter().filter(|i| i.is_active()).collect();
        assert!(all.iter().any(|i| !i.spot), "fell back to on-demand");
        assert!(!persisted.state.capacity.entries().is_empty(), "spot shortage is cached");
        let shown = persisted.status.as_ref().unwrap().to_string();
        assert!(shown.contains("InsufficientInstanceCapacity") || shown.contains("insufficient capacity"), "{shown}");

        // 3. The work is gone and the nodes have been idle past idle_timeout_minutes:
        //    they are terminated (their agents' heartbeats say idle since 10 minutes).
        for j in fleetform_agent::jobs::list(&store).await.unwrap() {
            fleetform_agent::jobs::cancel(&store, &j.job_id).await.unwrap();
        }
        let _ = job;
        for i in &all {
            let hb = NodeHeartbeat {
                node_id: i.id.clone(),
                node_type: "x86_worker_node".into(),
                instance: i.id.clone(),
                resources: Resources::new().with("CPU", 8.0).with("Intel", 1.0),
                slots: 8,
                busy_slots: 0,
                tasks_in_flight: vec![],
                leases: vec![],
                draining: None,
                scheduled_events: vec![],
                last_work_at: Utc::now() - chrono::Duration::minutes(10),
                started_at: Utc::now() - chrono::Duration::minutes(20),
                updated_at: Utc::now(),
                tasks_done: 3,
                rows_done: 3,
                stopped: false,
                setup_failed: None,
            };
            store.put_json(&layout::node(&i.id), &hb).await.unwrap();
        }
        let mut removed = 0;
        for _ in 0..2 {
            let d3 = aws_round(&ctx2, &spec_more, &store, &queue, &mut persisted).await.unwrap();
            removed += d3.terminations.len();
            assert!(d3.launches.is_empty(), "{:?}", d3.launches);
        }
        assert_eq!(removed, all.len(), "every idle x86 node is terminated");
        let status = persisted.status.as_ref().unwrap().to_string();
        assert!(status.contains("idle"), "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left: Vec<_> = observe::instances(&ctx2, Some("x86_worker_node")).await.unwrap().into_iter().filter(|i| i.is_active()).collect();
        assert!(left.is_empty(), "{left:?}");

        // 4. An agent that held a lease when its instance was terminated (no drain): the
        //    next round gives the lease back at once instead of waiting out its 600 s.
        let dead = &all[0];
        let leased = queue.receive("intel", 1, Duration::from_secs(600)).await.unwrap().pop().expect("a queued intel task");
        let before = queue.depth("intel").await.unwrap();
        let mut hb: NodeHeartbeat = store.get_json(&layout::node(&dead.id)).await.unwrap().unwrap();
        hb.leases = vec![HeldLease { task: "intel/t000000".into(), class: "intel".into(), handle: leased.handle.clone() }];
        hb.tasks_in_flight = vec!["intel/t000000".into()];
        store.put_json(&layout::node(&dead.id), &hb).await.unwrap();
        aws_round(&ctx2, &spec_more, &store, &queue, &mut persisted).await.unwrap();
        let after = queue.depth("intel").await.unwrap();
        assert_eq!((after.visible, after.in_flight), (before.visible + 1, before.in_flight - 1), "the dead node's lease is given back");
        let hb: NodeHeartbeat = store.get_json(&layout::node(&dead.id)).await.unwrap().unwrap();
        assert!(hb.stopped && hb.leases.is_empty(), "its heartbeat says it holds nothing: {hb:?}");
    });
    let (code, _) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0);
}

#[test]
fn local_agents_follow_the_work() {
    let env = LocalEnv::new(0, 1);
    // min 0, max 2 agents of 1 slot; idle after 3 s.
    let spec = std::fs::read_to_string(&env.cluster).unwrap().replace("max_workers: 0", "max_workers: 2").replace("head_node_type: head", "head_node_type: head\nidle_timeout_minutes: 0.05");
    std::fs::write(&env.cluster, spec).unwrap();
    let sup = env.up(10);
    assert!(sup.nodes().is_empty(), "no work, no agents");
    let job = env.write_job(
        "small.yaml",
        "name: small\ninput: {generate: {rows: 40000, seed: 1, text_length: 200}}\noutput: {uri: out}\nbatch_size: 1000\nsplit: {rows_per_task: 2000}\n",
    );
    let out = env.run(&["submit", job.to_str().unwrap()]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    wait_until(Duration::from_secs(60), "agents for the queued work", || !sup.nodes().is_empty());
    wait_until(Duration::from_secs(120), "the job", || env.store().join(format!("jobs/{id}/_SUCCESS")).exists());
    assert!(sup.nodes().len() <= 2, "bounded by max_workers and the machine");
    wait_until(Duration::from_secs(60), "idle agents to go", || sup.nodes().is_empty());
    let status = env.run(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("launch"), "{text}");
    assert!(text.contains("idle"), "{text}");
}

#[test]
fn run_on_a_cluster_with_no_minimum_gets_agents_from_the_autoscaler() {
    let env = LocalEnv::new(0, 1);
    let spec = std::fs::read_to_string(&env.cluster).unwrap().replace("max_workers: 0", "max_workers: 2");
    std::fs::write(&env.cluster, spec).unwrap();
    let job = env.write_job(
        "small.yaml",
        "name: small\ninput: {generate: {rows: 4000, seed: 1, text_length: 100}}\noutput: {uri: out}\nbatch_size: 1000\nsplit: {rows_per_task: 1000}\n",
    );
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 of 4 tasks done"));
}
