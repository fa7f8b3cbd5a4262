//! The view's figures agree with one another, with the store and with the queue, and
//! `/metrics` says the same as the view (parsed by a Prometheus text parser). A real
//! local store and SQLite queue, set up by hand into a known state: no agents, so every
//! figure has one right value.

use chrono::Utc;
use fleetform_runtime::queue::Queue;
use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::queue::TaskQueue;
use fleetform_core::spec::ClusterSpec;
use fleetform_core::task::TaskMessage;
use fleetform_core::JobSpec;
use serde_json::json;

use super::model::{ClusterView, JobState, NodeStatus};
use super::{metrics, Observer};
use crate::cluster::Handles;

const TASKS: usize = 10;

struct Fixture {
    _dir: tempfile::TempDir,
    spec: ClusterSpec,
    handles: Handles,
    store: Store,
    queue: Queue,
    job_id: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "cluster_name: obs\nprovider: {{type: local}}\nstorage: {{path: {}}}\nhead_node_type: head\n\
         available_node_types:\n  head: {{resources: {{CPU: 0}}}}\n  worker: {{resources: {{CPU: 2}}, min_workers: 0, max_workers: 3}}\n",
        dir.path().join("state/store").display()
    );
    let spec = ClusterSpec::from_yaml("obs.yaml", &yaml).unwrap();
    let handles = Handles::of(&spec).await.unwrap();
    let store = handles.store().await.unwrap();
    let queue = handles.queue().await.unwrap();
    let job = JobSpec::from_yaml(
        "gen.yaml",
        &format!(
            "name: gen\ninput: {{generate: {{rows: {}, seed: 1}}}}\noutput: {{uri: {}}}\nsplit: {{rows_per_task: 1000}}\n",
            TASKS * 1000,
            dir.path().join("out").display()
        ),
    )
    .unwrap();
    let job_id = fleetform_agent::plan::submit(&store, &queue, job).await.unwrap().job_id;
    Fixture { _dir: dir, spec, handles, store, queue, job_id }
}

fn heartbeat(node: &str, slots: u64, in_flight: &[String], draining: Option<&str>) -> serde_json::Value {
    let now = Utc::now();
    json!({
        "node_id": node, "node_type": "worker", "instance": "local-1", "resources": {"CPU": slots},
        "slots": slots, "busy_slots": in_flight.len(), "tasks_in_flight": in_flight, "draining": draining,
        "last_work_at": now, "started_at": now, "updated_at": now, "tasks_done": 3, "rows_done": 3000,
    })
}

/// 3 tasks done, 1 dead-lettered, 2 running on `n1`, the other 4 queued; `n2` is idle and
/// has had a spot interruption notice.
async fn mid_job(f: &Fixture) {
    let received = f.queue.receive("default", 6, std::time::Duration::from_secs(300)).await.unwrap();
    assert_eq!(received.len(), 6);
    let msgs: Vec<TaskMessage> = received.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    for (r, m) in received.iter().zip(&msgs).take(3) {
        let done = json!({
            "task_id": m.task_id, "node_id": "n1", "chunks": [], "rows_in": 1000, "rows_out": 1000,
            "units_processed": 1, "units_from_checkpoint": 0, "seconds": 0.5, "finished_at": Utc::now(),
        });
        f.store.put_json(&layout::done(&f.job_id, &m.task_id), &done).await.unwrap();
        f.queue.delete("default", &r.handle).await.unwrap();
    }
    let failed = json!({"task_id": msgs[3].task_id, "input": "generated rows", "error": "boom", "failures": 3, "node_id": "n1", "at": Utc::now()});
    f.store.put_json(&layout::failed(&f.job_id, &msgs[3].task_id), &failed).await.unwrap();
    f.queue.dead_letter("default", &received[3].handle, &received[3].body).await.unwrap();
    let running: Vec<String> = msgs[4..6].iter().map(|m| format!("{}/{}", f.job_id, m.task_id)).collect();
    f.store.put_json(&layout::node("n1"), &heartbeat("n1", 2, &running, None)).await.unwrap();
    f.store.put_json(&layout::node("n2"), &heartbeat("n2", 2, &[], Some("spot-interruption"))).await.unwrap();
}

/// Every figure that is said twice says the same thing.
fn assert_consistent(v: &ClusterView) {
    let by_type: u64 = v.node_types.iter().map(|t| t.slots.total).sum();
    assert_eq!(by_type, v.slots.total, "slots per type add up to the cluster's");
    let nodes_by_type: u32 = v.node_types.iter().flat_map(|t| t.nodes.values()).sum();
    assert_eq!(nodes_by_type as usize, v.nodes.len(), "nodes per type add up to the node list");
    let busy: u64 = v.nodes.iter().filter(|n| n.status.is_up()).map(|n| n.busy_slots).sum();
    assert_eq!(busy, v.slots.busy);
    for q in &v.queues {
        assert_eq!(q.queued + q.in_flight, q.tasks_remaining, "queue `{}` holds what the store says is left", q.class);
        let on_nodes: usize = v.nodes.iter().map(|n| n.tasks_in_flight.len()).sum();
        assert_eq!(q.running_on_nodes as usize, on_nodes, "the jobs' running tasks are the heartbeats'");
    }
    for j in &v.jobs {
        assert!(j.done + j.failed + j.running <= j.tasks, "{}: no task counted twice", j.job_id);
    }
}

#[tokio::test]
async fn the_figures_agree_with_one_another_the_store_and_the_queue() {
    let f = fixture().await;
    mid_job(&f).await;
    let mut observer = Observer::new(&f.spec, &f.handles);
    let v = observer.observe(Ok(&f.store), Ok(&f.queue)).await;
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_consistent(&v);

    let job = &v.jobs[0];
    let done_in_store = f.store.list(&layout::done_prefix(&f.job_id)).await.unwrap().len() as u64;
    assert_eq!((job.done, job.failed, job.running, job.tasks), (done_in_store, 1, 2, TASKS as u64));
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.rows_done, 3000, "rows of the done tasks, from the task list");
    assert_eq!(job.failures[0].error, "boom");
    assert!(job.log.iter().any(|l| l.line.contains("done on n1: 1000 rows in")), "{:?}", job.log);
    let depth = f.queue.depth("default").await.unwrap();
    let q = &v.queues[0];
    assert_eq!((q.class.as_str(), q.queued, q.in_flight, q.tasks_remaining), ("default", depth.visible, depth.in_flight, 6));
    assert_eq!((depth.visible, depth.in_flight), (4, 2));

    let n2 = v.nodes.iter().find(|n| n.node_id == "n2").unwrap();
    assert_eq!(n2.status, NodeStatus::Interrupted);
    assert_eq!(v.interruptions.get("spot-interruption"), Some(&1));
    assert_eq!(v.events[0].node_id, "n2");
    assert_eq!(v.slots.total, 4);
    assert_eq!(v.slots.busy, 2);

    let text = metrics::render(&v);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{text}"));
        match s.value {
            prometheus_parse::Value::Gauge(x) | prometheus_parse::Value::Counter(x) | prometheus_parse::Value::Untyped(x) => x,
            ref other => panic!("{name}: unexpected {other:?}"),
        }
    };
    assert_eq!(value("fleetform_nodes", &[("node_type", "worker"), ("market", "on-demand"), ("state", "running")]), 1.0);
    assert_eq!(value("fleetform_nodes", &[("node_type", "worker"), ("state", "interrupted")]), 1.0);
    assert_eq!(value("fleetform_slots", &[("state", "busy")]), v.slots.busy as f64);
    assert_eq!(value("fleetform_slots", &[("state", "idle")]), (v.slots.total - v.slots.busy) as f64);
    for (state, n) in [("done", 3.0), ("failed", 1.0), ("running", 2.0), ("queued", 4.0)] {
        assert_eq!(value("fleetform_tasks", &[("job", &f.job_id), ("state", state)]), n, "tasks {state}");
    }
    assert_eq!(value("fleetform_job_rows_total", &[("job", &f.job_id)]), 3000.0);
    assert_eq!(value("fleetform_queue_depth", &[("class", "default")]), 4.0);
    assert_eq!(value("fleetform_interruptions_total", &[("kind", "spot-interruption")]), 1.0);
}

#[tokio::test]
async fn a_lost_store_keeps_the_last_figures_with_their_time_and_says_why() {
    let f = fixture().await;
    let mut observer = Observer::new(&f.spec, &f.handles);
    let first = observer.observe(Ok(&f.store), Ok(&f.queue)).await;
    assert_eq!(first.jobs[0].state, JobState::Queued);
    // The store goes away: the section keeps its figures and time, and says why.
    let gone: Result<&Store, String> = Err("connection refused".into());
    let v = observer.observe(gone, Ok(&f.queue)).await;
    assert_eq!(v.jobs, first.jobs);
    assert_eq!(v.jobs_at, first.jobs_at, "the jobs are as old as the last read");
    assert!(v.errors[0].contains("cannot open the cluster store") && v.errors[0].contains("connection refused"), "{:?}", v.errors);
    assert!(metrics::render(&v).contains("\nfleetform_observe_errors 1.0\n"));
}
