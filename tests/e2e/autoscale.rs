//! The autoscaler wired to its providers (docs/DESIGN.md, decisions 8 and 11): on moto,
//! queued demand launches instances of the right node type and market, an injected capacity
//! shortage falls back to on-demand, idle nodes are terminated; locally, agents come and go
//! with the work.

use std::time::Duration;

use chrono::Utc;
use fleetform::autoscaler::decide::plan_launches;
use fleetform::autoscaler::run::{load_state, pass, round, Persisted};
use fleetform::autoscaler::NodeProvider;
use fleetform::aws::resources::placement;
use fleetform::aws::stages::live;
use fleetform::aws::{AwsProvider, ContextOptions};
use fleetform_runtime::queue::{sqs::SqsQueue, Queue};
use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::queue::TaskQueue;
use fleetform_core::spec::Market;
use fleetform_core::task::{HeldLease, NodeHeartbeat};
use fleetform_core::{ClusterSpec, JobSpec, Resources};

use crate::aws_reconcile::{connect, provider, run, runtime, Fixture};
use crate::faults::{CapacityShortage, LaunchRecorder, LaunchRequest};
use crate::harness::{wait_until, LocalEnv};
use crate::moto::Moto;

/// Demand only: nothing runs these tasks on moto (no agents), so the output location
/// is a local directory.
fn intel_job(tasks: u64, out: &std::path::Path) -> JobSpec {
    JobSpec::from_yaml("intel.yaml", &intel_job_yaml(tasks, out)).unwrap()
}

fn intel_job_yaml(tasks: u64, out: &std::path::Path) -> String {
    format!(
        "name: intel\ninput: {{generate: {{rows: {tasks}, text_length: 10}}}}\noutput: {{uri: {}}}\n\
         split: {{rows_per_task: 1}}\nresources: {{CPU: 1, Intel: 1}}\n",
        out.display()
    )
}

/// The heartbeat of an agent idle for 10 minutes.
fn idle_heartbeat(id: &str, node_type: &str) -> NodeHeartbeat {
    NodeHeartbeat {
        node_id: id.to_string(),
        node_type: node_type.into(),
        instance: id.to_string(),
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
    }
}

/// Demand for the Graviton type only.
fn graviton_job(tasks: u64, out: &std::path::Path) -> JobSpec {
    let yaml = intel_job_yaml(tasks, out)
        .replace("Intel: 1", "Graviton: 1")
        .replace("name: intel", "name: graviton");
    JobSpec::from_yaml("graviton.yaml", &yaml).unwrap()
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
        let store = Store::open_with(&config, "s3://fleetform-asg-data/asg").await.unwrap();
        let queue = Queue::Sqs(SqsQueue::new(&config, "asg"));
        let job = fleetform_agent::plan::submit(
            &store,
            &queue,
            intel_job(20, &f.dir.path().join("out1")),
        )
        .await
        .unwrap();

        // 1. Intel demand scales the Intel (x86) type, on spot.
        let ctx = connect(&moto, &f, ContextOptions::default()).await;
        let provider = AwsProvider::new(
            connect(&moto, &f, ContextOptions::default()).await,
            store.clone(),
            queue.clone(),
        );
        let before: Vec<_> = live::instances(&ctx, Some("x86_worker_node"))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.is_active())
            .collect();
        assert!(before.is_empty());
        let mut persisted = Persisted::default();
        let d = round(&provider, &store, &mut persisted).await.unwrap();
        let launch = d
            .launches
            .iter()
            .find(|l| l.node_type == "x86_worker_node")
            .expect("an x86 launch");
        assert!(launch.reason.contains("CPU of queued"), "{}", launch.reason);
        assert!(
            d.launches.iter().all(|l| l.node_type != "arm_worker_node"),
            "Intel demand must not scale Graviton: {:?}",
            d.launches
        );
        let x86: Vec<_> = live::instances(&ctx, Some("x86_worker_node"))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.is_active())
            .collect();
        assert_eq!(x86.len() as u32, launch.count);
        assert!(x86.iter().all(|i| i.spot), "spot node type launches spot");

        // 2. No spot capacity anywhere (injected at the EC2 boundary): on-demand fallback,
        //    and the failed offerings are cached and explained.
        let faults = CapacityShortage::new().offering(Some(Market::Spot), None, None);
        let spec_more = ClusterSpec::from_yaml(
            "more",
            &std::fs::read_to_string(&f.spec).unwrap().replace(
                "max_workers: 4\n    node_config: {instance_types: [r7i",
                "max_workers: 8\n    node_config: {instance_types: [r7i",
            ),
        )
        .unwrap();
        let ctx2 = fleetform::aws::AwsContext::connect_with(
            &spec_more,
            moto.sdk_config().await,
            ContextOptions { interceptors: vec![faults.interceptor()] },
        )
        .await
        .unwrap();
        faults.learn_zones(&placement::network(&ctx2).await.unwrap().subnets);
        let provider2 = AwsProvider::new(ctx2, store.clone(), queue.clone());
        let ctx2 = provider2.context();
        fleetform_agent::plan::submit(&store, &queue, intel_job(200, &f.dir.path().join("out2")))
            .await
            .unwrap();
        let d2 = round(&provider2, &store, &mut persisted).await.unwrap();
        assert!(!d2.launches.is_empty(), "{:?}", d2.explanations);
        let all: Vec<_> = live::instances(ctx2, Some("x86_worker_node"))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.is_active())
            .collect();
        assert!(all.iter().any(|i| !i.spot), "fell back to on-demand");
        assert!(
            !persisted.state.capacity.entries().is_empty(),
            "spot shortage is cached"
        );
        let shown = persisted.status.as_ref().unwrap().to_string();
        assert!(
            shown.contains("InsufficientInstanceCapacity")
                || shown.contains("insufficient capacity"),
            "{shown}"
        );

        // 3. The work is gone and the nodes have been idle past idle_timeout_minutes:
        //    they are terminated (their agents' heartbeats say idle since 10 minutes).
        for j in fleetform_runtime::jobs::list(&store).await.unwrap() {
            fleetform_runtime::jobs::cancel(&store, &j.job_id)
                .await
                .unwrap();
        }
        let _ = (job, &spec);
        for i in &all {
            let hb = idle_heartbeat(&i.id, "x86_worker_node");
            store.put_json(&layout::node(&i.id), &hb).await.unwrap();
        }
        let mut removed = 0;
        for _ in 0..2 {
            let d3 = round(&provider2, &store, &mut persisted).await.unwrap();
            removed += d3.terminations.len();
            assert!(d3.launches.is_empty(), "{:?}", d3.launches);
        }
        assert_eq!(removed, all.len(), "every idle x86 node is terminated");
        let status = persisted.status.as_ref().unwrap().to_string();
        assert!(status.contains("idle"), "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left: Vec<_> = live::instances(ctx2, Some("x86_worker_node"))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.is_active())
            .collect();
        assert!(left.is_empty(), "{left:?}");

        // 4. An agent that held a lease when its instance was terminated (no drain): the
        //    next round gives the lease back at once instead of waiting out its 600 s.
        let dead = &all[0];
        let leased = queue
            .receive("intel", 1, Duration::from_secs(600))
            .await
            .unwrap()
            .pop()
            .expect("a queued intel task");
        let before = queue.depth("intel").await.unwrap();
        let mut hb: NodeHeartbeat = store
            .get_json(&layout::node(&dead.id))
            .await
            .unwrap()
            .unwrap();
        hb.leases = vec![HeldLease {
            task: "intel/t000000".into(),
            class: "intel".into(),
            handle: leased.handle.clone(),
        }];
        hb.tasks_in_flight = vec!["intel/t000000".into()];
        store.put_json(&layout::node(&dead.id), &hb).await.unwrap();
        round(&provider2, &store, &mut persisted).await.unwrap();
        let after = queue.depth("intel").await.unwrap();
        assert_eq!(
            (after.visible, after.in_flight),
            (before.visible + 1, before.in_flight - 1),
            "the dead node's lease is given back"
        );
        let hb: NodeHeartbeat = store
            .get_json(&layout::node(&dead.id))
            .await
            .unwrap()
            .unwrap();
        assert!(
            hb.stopped && hb.leases.is_empty(),
            "its heartbeat says it holds nothing: {hb:?}"
        );
    });
    let (code, _) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0);
}

#[test]
fn local_agents_follow_the_work() {
    let env = LocalEnv::new(0, 1);
    // min 0, max 2 agents of 1 slot; idle after 3 s.
    let spec = std::fs::read_to_string(&env.cluster)
        .unwrap()
        .replace("max_workers: 0", "max_workers: 2")
        .replace(
            "head_node_type: head",
            "head_node_type: head\nidle_timeout_minutes: 0.05",
        );
    std::fs::write(&env.cluster, spec).unwrap();
    let sup = env.up(10);
    assert!(sup.nodes().is_empty(), "no work, no agents");
    let job = env.write_job(
        "small.yaml",
        "name: small\ninput: {generate: {rows: 40000, seed: 1, text_length: 200}}\noutput: {uri: out}\nbatch_size: 1000\nsplit: {rows_per_task: 2000}\n",
    );
    let out = env.run(&["submit", job.to_str().unwrap()]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    wait_until(
        Duration::from_secs(60),
        "agents for the queued work",
        || !sup.nodes().is_empty(),
    );
    wait_until(Duration::from_secs(120), "the job", || {
        env.store().join(format!("jobs/{id}/_SUCCESS")).exists()
    });
    assert!(
        sup.nodes().len() <= 2,
        "bounded by max_workers and the machine"
    );
    wait_until(Duration::from_secs(60), "idle agents to go", || {
        sup.nodes().is_empty()
    });
    let status = env.run(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("launch"), "{text}");
    assert!(text.contains("idle"), "{text}");
}

#[test]
fn run_on_a_cluster_with_no_minimum_gets_agents_from_the_autoscaler() {
    let env = LocalEnv::new(0, 1);
    let spec = std::fs::read_to_string(&env.cluster)
        .unwrap()
        .replace("max_workers: 0", "max_workers: 2");
    std::fs::write(&env.cluster, spec).unwrap();
    let job = env.write_job(
        "small.yaml",
        "name: small\ninput: {generate: {rows: 4000, seed: 1, text_length: 100}}\noutput: {uri: out}\nbatch_size: 1000\nsplit: {rows_per_task: 1000}\n",
    );
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 of 4 tasks done"));
}

/// Cron mode (`fleetform reconcile` once a minute): each pass is a new process, so the
/// capacity cache must come from the store. Pass 1 finds one spot offering dry; pass 2,
/// with nothing in memory and no fault injected, leaves it out of what EC2 receives, and
/// `fleetform status` shows it. Every CreateFleet carries exactly the decision's offerings.
#[test]
fn aws_cron_passes_share_the_persisted_capacity_cache_and_ec2_gets_the_decision() {
    let moto = Moto::start();
    let f = Fixture::new("cron", 0);
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    runtime().block_on(async {
        let recorder = LaunchRecorder::default();
        let dry = CapacityShortage::new().offering(
            Some(Market::Spot),
            Some("r7i.2xlarge"),
            Some("us-west-2a"),
        );
        let p1 = provider(&moto, &f, dry, &recorder).await;
        let net = placement::network(p1.context()).await.unwrap();
        let subnet = |zone: &str| {
            net.subnets
                .iter()
                .find(|(_, z)| z == zone)
                .unwrap()
                .0
                .clone()
        };
        let sent = |t: &str, zone: &str| (t.to_string(), subnet(zone));
        fleetform_agent::plan::submit(
            p1.store(),
            &queue_of(&moto, "cron").await,
            intel_job(8, &f.dir.path().join("o1")),
        )
        .await
        .unwrap();

        let mut persisted = load_state(p1.store()).await;
        let one = pass(&p1, p1.store(), &mut persisted).await;
        assert!(one.error.is_none(), "{:?}", one.error);
        let d = one.decision.unwrap();
        let launch = d
            .launches
            .iter()
            .find(|l| l.node_type == "x86_worker_node")
            .expect("an x86 launch");
        assert_eq!(
            (launch.market, launch.skipped.len()),
            (Market::Spot, 0),
            "{launch:?}"
        );
        // The decision's spot offerings, in order, minus the one that failed at the boundary.
        let requests = recorder.take();
        let token = requests.first().map(|r| r.client_token.clone()).unwrap_or_default();
        assert!(token.starts_with("ff-"), "{requests:?}");
        let expected = LaunchRequest {
            market: Market::Spot,
            count: launch.count as i32,
            offerings: vec![
                sent("r7i.2xlarge", "us-west-2b"),
                sent("m7i.2xlarge", "us-west-2a"),
                sent("m7i.2xlarge", "us-west-2b"),
            ],
            client_token: token,
        };
        assert_eq!(requests, vec![expected]);

        // Pass 2: a new process, more demand, no fault: the stored cache still skips it.
        drop(persisted);
        let p2 = provider(&moto, &f, CapacityShortage::new(), &recorder).await;
        fleetform_agent::plan::submit(
            p2.store(),
            &queue_of(&moto, "cron").await,
            intel_job(8, &f.dir.path().join("o2")),
        )
        .await
        .unwrap();
        let mut persisted = load_state(p2.store()).await;
        let two = pass(&p2, p2.store(), &mut persisted).await;
        assert!(two.error.is_none(), "{:?}", two.error);
        let d = two.decision.unwrap();
        let launch = d
            .launches
            .iter()
            .find(|l| l.node_type == "x86_worker_node")
            .expect("more x86 for more demand");
        assert_eq!(
            launch
                .skipped
                .iter()
                .map(|s| s.offering.to_string())
                .collect::<Vec<_>>(),
            ["r7i.2xlarge spot us-west-2a"]
        );
        let requests = recorder.take();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(
            requests[0].offerings,
            expected_offerings(
                &[
                    ("r7i.2xlarge", "us-west-2b"),
                    ("m7i.2xlarge", "us-west-2a"),
                    ("m7i.2xlarge", "us-west-2b")
                ],
                &subnet
            )
        );
    });
    let (code, out) = run(&moto, &f, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("r7i.2xlarge spot us-west-2a: insufficient capacity until"),
        "{out}"
    );
    let (code, out) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0, "{out}");
}

fn expected_offerings(
    o: &[(&str, &str)],
    subnet: &dyn Fn(&str) -> String,
) -> Vec<(String, String)> {
    o.iter().map(|(t, z)| (t.to_string(), subnet(z))).collect()
}

async fn queue_of(moto: &Moto, cluster: &str) -> Queue {
    Queue::Sqs(SqsQueue::new(&moto.sdk_config().await, cluster))
}

/// A launch that fails (not for capacity) does not stop the round: the idle node is still
/// terminated, the state and the error are saved. Then `reconcile --watch` meets an error
/// every round (the Graviton launch template is gone) and keeps going, with the error and
/// the backoff in `fleetform status`.
#[test]
fn aws_a_failed_launch_still_removes_and_saves_and_watch_survives_errors() {
    let moto = Moto::start();
    let f = Fixture::new("failing", 0);
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let rt = runtime();
    rt.block_on(async {
        let recorder = LaunchRecorder::default();
        let refused = CapacityShortage::new()
            .offering(None, Some("r8g.2xlarge"), None)
            .code("InvalidParameterValue");
        let p = provider(&moto, &f, refused, &recorder).await;
        // An idle x86 node (min_workers 0) and Graviton demand.
        let x86 = plan_launches(
            p.spec(),
            &Default::default(),
            "x86_worker_node",
            1,
            0,
            "test",
            Utc::now(),
        );
        let idle = p.launch(&x86.launches[0]).await.unwrap().launched[0]
            .id
            .clone();
        p.store()
            .put_json(
                &layout::node(&idle),
                &idle_heartbeat(&idle, "x86_worker_node"),
            )
            .await
            .unwrap();
        fleetform_agent::plan::submit(
            p.store(),
            &queue_of(&moto, "failing").await,
            graviton_job(8, &f.dir.path().join("g")),
        )
        .await
        .unwrap();

        let mut persisted = load_state(p.store()).await;
        let out = pass(&p, p.store(), &mut persisted).await;
        let err = out.error.expect("the Graviton launch failed").to_string();
        assert!(
            err.contains("arm_worker_node") && err.contains("InvalidParameterValue"),
            "{err}"
        );
        assert!(out.retry_in.is_some());
        let d = out
            .decision
            .expect("the round decided before the launch failed");
        assert!(
            d.terminations.iter().any(|t| t.node_id == idle),
            "{:?}",
            d.explanations
        );
        let state = live::instances(p.context(), Some("x86_worker_node"))
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.id == idle)
            .unwrap()
            .state;
        assert!(
            state == "shutting-down" || state == "terminated",
            "the idle node is terminated: {state}"
        );
        let saved = load_state(p.store()).await;
        assert_eq!(saved.failures.consecutive, 1);
        assert!(saved
            .failures
            .last
            .unwrap()
            .message
            .contains("InvalidParameterValue"));
        assert_eq!(saved.status.expect("the round's status is saved").at, d.at);

        // The Graviton launch template disappears: every round of the watch fails.
        let lt = fleetform::aws::names::launch_template("failing", "arm_worker_node");
        p.context()
            .ec2
            .delete_launch_template()
            .launch_template_name(lt)
            .send()
            .await
            .unwrap();
    });
    let mut watch = moto.fleetform(&[
        "reconcile",
        "--watch",
        "--interval",
        "1",
        "-f",
        f.spec.to_str().unwrap(),
    ]);
    let mut watch = watch
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let store = rt.block_on(async {
        provider(
            &moto,
            &f,
            CapacityShortage::new(),
            &LaunchRecorder::default(),
        )
        .await
        .store()
        .clone()
    });
    wait_until(
        Duration::from_secs(90),
        "three failed rounds in a row",
        || rt.block_on(load_state(&store)).failures.consecutive >= 3,
    );
    assert!(
        watch.try_wait().unwrap().is_none(),
        "errors do not end --watch"
    );
    let (code, out) = run(&moto, &f, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("AUTOSCALER FAILING") && out.contains("rounds in a row"),
        "{out}"
    );
    assert!(
        out.contains("not found: run `fleetform apply` first"),
        "{out}"
    );
    watch.kill().unwrap();
    let _ = watch.wait();
    let (code, out) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0, "{out}");
}
