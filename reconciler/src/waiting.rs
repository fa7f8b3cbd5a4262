//! Why a job is not moving: `run` and `submit --wait` never wait silently. When no task
//! of the job has finished for [`STALL_NOTICE`], they look at the cluster once (the
//! status model, as `fleetform status` does) and print one sentence saying what holds
//! the job and what to do, again every [`NOTICE_EVERY`] while it stays stuck.

use std::time::{Duration, Instant};

use crate::observe::model::{ClusterView, JobView};
use crate::observe::observer::Connection;
use crate::observe::Observer;

/// Quiet this long before the first explanation: long enough that a healthy job's first
/// tasks (agent start, Python workers, a first row group) never trigger it.
pub const STALL_NOTICE: Duration = Duration::from_secs(20);
/// Then at most one line per this interval.
pub const NOTICE_EVERY: Duration = Duration::from_secs(30);

/// Follows a job's progress and says, when it stops moving, why.
pub struct StallWatch {
    observer: Observer,
    connection: Connection,
    last_progress: (u64, Instant),
    last_notice: Option<Instant>,
}

impl StallWatch {
    pub fn new(observer: Observer, connection: Connection) -> StallWatch {
        StallWatch { observer, connection, last_progress: (0, Instant::now()), last_notice: None }
    }

    /// `finished` is the job's done + failed tasks now. Returns a line to print, if due.
    pub async fn check(&mut self, job_id: &str, finished: u64) -> Option<String> {
        let now = Instant::now();
        if finished != self.last_progress.0 {
            self.last_progress = (finished, now);
            self.last_notice = None;
            return None;
        }
        let quiet = now - self.last_progress.1;
        let due = quiet >= STALL_NOTICE && self.last_notice.is_none_or(|t| now - t >= NOTICE_EVERY);
        if !due {
            return None;
        }
        self.last_notice = Some(now);
        let view = self.connection.observe(&mut self.observer).await;
        Some(format!("no task finished for {}s: {}", quiet.as_secs(), why_waiting(&view, job_id)))
    }
}

/// One sentence on what holds `job_id`, from one observation of its cluster.
pub fn why_waiting(v: &ClusterView, job_id: &str) -> String {
    if let Some(e) = v.errors.first() {
        return format!("the cluster cannot be observed ({e})");
    }
    let Some(job) = v.jobs.iter().find(|j| j.job_id == job_id) else {
        return "the job's record is not readable yet".into();
    };
    let up: Vec<_> = v.nodes.iter().filter(|n| n.status.is_up()).collect();
    if job.running > 0 {
        return format!("{} task(s) running on {} node(s), {} to go (long units or slow steps: `fleetform job logs {job_id}`)", job.running, running_nodes(v, job), job.remaining());
    }
    if up.is_empty() {
        return no_nodes(v, job);
    }
    let (total, busy) = (v.slots.total, v.slots.busy);
    if busy >= total {
        return format!("{} task(s) queued for class `{}`; all {total} slots of the {} node(s) up are busy with other work", job.remaining(), job.class, up.len());
    }
    let infeasible = v.autoscaler.as_ref().and_then(|a| a.round.infeasible.iter().find(|i| i.resources.class().slug() == job.class));
    match infeasible {
        Some(i) => format!("no node type can run class `{}`: {}", job.class, i.reason),
        None => format!(
            "{} task(s) queued for class `{}` and {} slot(s) free on {} node(s), none of which serves that class; the autoscaler adds such nodes (see `fleetform status`)",
            job.remaining(),
            job.class,
            total - busy,
            up.len()
        ),
    }
}

fn running_nodes(v: &ClusterView, job: &JobView) -> usize {
    let prefix = format!("{}/", job.job_id);
    v.nodes.iter().filter(|n| n.tasks_in_flight.iter().any(|t| t.starts_with(&prefix))).count()
}

/// No node is up: say whether anything will start one.
fn no_nodes(v: &ClusterView, job: &JobView) -> String {
    let queued = format!("{} task(s) queued and no node is up", job.remaining());
    let pending = v.nodes.iter().filter(|n| n.status == crate::observe::model::NodeStatus::Pending).count();
    if pending > 0 {
        return format!("{queued}; {pending} node(s) are starting (no heartbeat yet)");
    }
    let starter = if v.provider == "local" {
        "start agents with `fleetform up -f CLUSTER.yaml` in another terminal (or use `fleetform run`, which starts them)"
    } else {
        "the head node's `fleetform reconcile` launches workers: check it with `fleetform status`"
    };
    match &v.autoscaler {
        None => format!("{queued}; no autoscaler has ever run for this cluster: {starter}"),
        Some(a) if a.stale => format!("{queued}; the autoscaler's latest round was {:.0}s ago: {starter}", a.age_seconds),
        Some(a) => match a.round.capacity_errors.first() {
            Some(c) => format!("{queued}; the autoscaler cannot launch: {c}"),
            None => format!("{queued}; the autoscaler's latest round: {}", a.round.latest_round.join("; ")),
        },
    }
}

#[cfg(test)]
mod tests {
    //! A real local store and SQLite queue with a submitted job and no agents, observed
    //! as `run` observes it: each state of the cluster gets its own sentence.
    use chrono::Utc;
    use fleetform_core::layout;
    use fleetform_core::spec::ClusterSpec;
    use fleetform_core::JobSpec;
    use serde_json::json;

    use super::*;
    use crate::cluster::Handles;

    async fn cluster_with_a_queued_job(dir: &std::path::Path) -> (ClusterSpec, Handles, fleetform_runtime::store::Store, String) {
        let yaml = format!(
            "cluster_name: w\nprovider: {{type: local}}\nstorage: {{path: {}}}\nhead_node_type: head\n\
             available_node_types:\n  head: {{resources: {{CPU: 0}}}}\n  worker: {{resources: {{CPU: 2}}, min_workers: 0, max_workers: 2}}\n",
            dir.join("store").display()
        );
        let spec = ClusterSpec::from_yaml("w.yaml", &yaml).unwrap();
        let handles = Handles::of(&spec).await.unwrap();
        let (store, queue) = (handles.store().await.unwrap(), handles.queue().await.unwrap());
        let job = JobSpec::from_yaml(
            "gen.yaml",
            &format!("name: gen\ninput: {{generate: {{rows: 4000, seed: 1}}}}\noutput: {{uri: {}}}\nsplit: {{rows_per_task: 1000}}\n", dir.join("out").display()),
        )
        .unwrap();
        let id = fleetform_agent::plan::submit(&store, &queue, job).await.unwrap().job_id;
        (spec, handles, store, id)
    }

    fn busy_node(node: &str, running: &[String]) -> serde_json::Value {
        let now = Utc::now();
        json!({
            "node_id": node, "node_type": "worker", "instance": "local-1", "resources": {"CPU": 2},
            "slots": 2, "busy_slots": 2, "tasks_in_flight": running, "last_work_at": now,
            "started_at": now, "updated_at": now, "tasks_done": 0, "rows_done": 0,
        })
    }

    #[tokio::test]
    async fn each_reason_a_job_waits_gets_its_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, handles, store, id) = cluster_with_a_queued_job(dir.path()).await;
        let mut observer = Observer::new(&spec, &handles);
        let mut conn = Connection::new(&handles);

        let why = why_waiting(&conn.observe(&mut observer).await, &id);
        assert_eq!(
            why,
            "4 task(s) queued and no node is up; no autoscaler has ever run for this cluster: start agents with \
             `fleetform up -f CLUSTER.yaml` in another terminal (or use `fleetform run`, which starts them)"
        );

        // A node busy with another job's tasks: the job waits for a slot.
        store.put_json(&layout::node("n1"), &busy_node("n1", &["other/t1".into(), "other/t2".into()])).await.unwrap();
        let why = why_waiting(&conn.observe(&mut observer).await, &id);
        assert_eq!(why, "4 task(s) queued for class `default`; all 2 slots of the 1 node(s) up are busy with other work");

        // The job's own task runs: it is slow, not stuck.
        store.put_json(&layout::node("n1"), &busy_node("n1", &[format!("{id}/t0")])).await.unwrap();
        let why = why_waiting(&conn.observe(&mut observer).await, &id);
        assert!(why.starts_with("1 task(s) running on 1 node(s)"), "{why}");
    }

    #[tokio::test]
    async fn the_watch_speaks_only_after_a_quiet_spell_and_not_on_every_poll() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, handles, _store, id) = cluster_with_a_queued_job(dir.path()).await;
        let mut w = StallWatch::new(Observer::new(&spec, &handles), Connection::new(&handles));
        assert_eq!(w.check(&id, 0).await, None, "not quiet for long yet");
        w.last_progress.1 -= STALL_NOTICE;
        let line = w.check(&id, 0).await.expect("quiet for STALL_NOTICE");
        assert!(line.starts_with("no task finished for 20s: 4 task(s) queued and no node is up"), "{line}");
        assert_eq!(w.check(&id, 0).await, None, "one line per NOTICE_EVERY");
        assert_eq!(w.check(&id, 1).await, None, "progress resets the watch");
    }
}
