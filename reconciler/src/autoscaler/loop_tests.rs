//! The loop over a provider ([`run::round`], [`run::pass`]): a scripted provider whose
//! launches of one type fail, over a real local store and SQLite queue. The decision
//! itself is tested in `tests.rs`; here, what the loop does when part of it fails.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{bail, Result};
use chrono::{Duration, Utc};
use fleetform_runtime::queue::Queue;
use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::spec::{ClusterSpec, Market};
use fleetform_core::task::NodeHeartbeat;
use fleetform_core::{JobSpec, Resources};

use super::policy::REQUEUE_BASE;
use super::provider::{observed, LaunchedNode, ProviderNode};
use super::run::{load_state, pass};
use super::*;

/// Two worker types; launching `broken` fails with an error that is not about capacity.
struct Scripted {
    spec: ClusterSpec,
    /// (id, node type) of the nodes alive.
    nodes: Mutex<Vec<(String, String)>>,
    fail_observe: bool,
    terminated: Mutex<Vec<String>>,
}

impl NodeProvider for Scripted {
    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    async fn observe(&self, beats: &HashMap<String, NodeHeartbeat>) -> Result<Vec<ObservedNode>> {
        if self.fail_observe {
            bail!("ec2:DescribeInstances failed: cannot reach AWS");
        }
        let nodes = self.nodes.lock().unwrap().clone();
        let node = |(id, t): &(String, String)| -> ObservedNode {
            let n = ProviderNode {
                id,
                node_type: t,
                market: Market::OnDemand,
                instance_type: "local",
                zone: None,
                launched_at: Utc::now() - Duration::minutes(30),
                terminating: false,
            };
            observed(n, beats)
        };
        Ok(nodes.iter().map(node).collect())
    }

    async fn launch(&self, launch: &Launch) -> Result<LaunchReport> {
        if launch.node_type == "broken" {
            bail!("launch template fleetform-loop-broken not found: run `fleetform apply` first");
        }
        let launched: Vec<LaunchedNode> = (0..launch.count)
            .map(|i| LaunchedNode {
                id: format!("{}-{i}", launch.node_type),
                market: Market::OnDemand,
                instance_type: "local".into(),
                zone: None,
            })
            .collect();
        self.nodes.lock().unwrap().extend(
            launched
                .iter()
                .map(|n| (n.id.clone(), launch.node_type.clone())),
        );
        Ok(LaunchReport {
            launched,
            ..Default::default()
        })
    }

    async fn terminate(&self, node_ids: &[String]) -> Result<()> {
        self.terminated
            .lock()
            .unwrap()
            .extend(node_ids.iter().cloned());
        self.nodes
            .lock()
            .unwrap()
            .retain(|(id, _)| !node_ids.contains(id));
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    queue: Queue,
    provider: Scripted,
}

async fn fixture(fail_observe: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "cluster_name: loop\nprovider: {type: local}\nhead_node_type: head\nidle_timeout_minutes: 5\n\
         available_node_types:\n  head: {resources: {CPU: 0}}\n\
         \x20 plain: {resources: {CPU: 2}, min_workers: 0, max_workers: 3}\n\
         \x20 broken: {resources: {CPU: 2, Special: 1}, min_workers: 0, max_workers: 3}\n";
    let spec = ClusterSpec::from_yaml("loop.yaml", yaml).unwrap();
    let conn = fleetform_runtime::Connections::from_env();
    let store = Store::open(&conn, &format!("file://{}", dir.path().join("store").display()))
        .await
        .unwrap();
    let queue = Queue::open(&conn, &format!(
        "sqlite://{}",
        dir.path().join("queue.sqlite").display()
    ))
    .await
    .unwrap();
    let provider = Scripted {
        spec,
        nodes: Mutex::new(Vec::new()),
        fail_observe,
        terminated: Mutex::new(Vec::new()),
    };
    Fixture {
        _dir: dir,
        store,
        queue,
        provider,
    }
}

/// An agent of `plain` idle for ten minutes (past idle_timeout_minutes 5).
async fn idle_plain_node(f: &Fixture, id: &str) {
    f.provider
        .nodes
        .lock()
        .unwrap()
        .push((id.into(), "plain".into()));
    let now = Utc::now();
    let hb = NodeHeartbeat {
        node_id: id.into(),
        node_type: "plain".into(),
        instance: id.into(),
        resources: Resources::new().with("CPU", 2.0),
        slots: 2,
        busy_slots: 0,
        tasks_in_flight: vec![],
        leases: vec![],
        draining: None,
        scheduled_events: vec![],
        last_work_at: now - Duration::minutes(10),
        started_at: now - Duration::minutes(30),
        updated_at: now,
        tasks_done: 1,
        rows_done: 1,
        stopped: false,
        setup_failed: None,
    };
    f.store.put_json(&layout::node(id), &hb).await.unwrap();
}

/// Demand only `broken` can run.
async fn special_demand(f: &Fixture) {
    let job = JobSpec::from_yaml(
        "special.yaml",
        &format!(
            "name: special\ninput: {{generate: {{rows: 4, text_length: 10}}}}\noutput: {{uri: {}}}\n\
             split: {{rows_per_task: 1}}\nresources: {{CPU: 1, Special: 1}}\n",
            f._dir.path().join("out").display()
        ),
    )
    .unwrap();
    fleetform_agent::plan::submit(&f.store, &f.queue, job)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_launch_does_not_stop_the_removals_or_the_save() {
    let f = fixture(false).await;
    idle_plain_node(&f, "p-idle").await;
    special_demand(&f).await;

    let mut persisted = load_state(&f.store).await;
    let p = pass(&f.provider, &f.store, &mut persisted).await;
    let err = p
        .error
        .expect("the broken launch fails the round")
        .to_string();
    assert!(
        err.starts_with("launch ")
            && err.contains(" broken: ")
            && err.contains("not found: run `fleetform apply` first"),
        "{err}"
    );
    let wait = p.retry_in.expect("the error policy picked a requeue");
    assert!(
        wait >= REQUEUE_BASE / 2 && wait <= REQUEUE_BASE,
        "first failure waits 2.5-5 s: {wait:?}"
    );
    let d = p.decision.expect("the round decided");
    assert_eq!(
        d.terminations
            .iter()
            .map(|t| t.node_id.as_str())
            .collect::<Vec<_>>(),
        ["p-idle"]
    );
    assert_eq!(
        *f.provider.terminated.lock().unwrap(),
        ["p-idle"],
        "the removal ran although the launch failed"
    );

    // Saved: the status of the round, its error, the history line of the failure.
    let saved = load_state(&f.store).await;
    assert_eq!(saved.status.as_ref().map(|s| s.at), Some(d.at));
    assert_eq!(saved.failures.consecutive, 1);
    assert_eq!(saved.failures.last.as_ref().unwrap().message, err);
    assert!(saved
        .state
        .history
        .iter()
        .any(|h| h.line.starts_with("launch ")
            && h.line.contains(" broken: ")
            && h.line.contains(" failed: ")));

    // The next failure backs off further; a good round resets it.
    let mut persisted = saved;
    let again = pass(&f.provider, &f.store, &mut persisted).await;
    assert!(
        again.retry_in.unwrap() >= REQUEUE_BASE,
        "second failure waits 5-10 s: {:?}",
        again.retry_in
    );
    assert_eq!(load_state(&f.store).await.failures.consecutive, 2);
    for j in fleetform_runtime::jobs::list(&f.store).await.unwrap() {
        fleetform_runtime::jobs::cancel(&f.store, &j.job_id)
            .await
            .unwrap();
    }
    let ok = pass(&f.provider, &f.store, &mut persisted).await;
    assert!(
        ok.error.is_none() && ok.retry_in.is_none(),
        "{:?}",
        ok.error
    );
    assert_eq!(
        load_state(&f.store).await.failures,
        RoundFailures::default()
    );
}

#[tokio::test]
async fn a_failed_observation_is_recorded_and_keeps_the_last_status() {
    let f = fixture(true).await;
    let mut persisted = load_state(&f.store).await;
    let p = pass(&f.provider, &f.store, &mut persisted).await;
    assert!(p.decision.is_none());
    assert_eq!(
        p.error.unwrap().to_string(),
        "observing the cluster: ec2:DescribeInstances failed: cannot reach AWS"
    );
    let saved = load_state(&f.store).await;
    assert_eq!(
        (saved.failures.consecutive, saved.status.is_none()),
        (1, true)
    );
}
