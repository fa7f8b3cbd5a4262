//! The one poller of a dashboard: it observes the cluster every interval, whatever the
//! number of pages open, and publishes the rendered answers (JSON, metrics text) that
//! every request is served from. A request never reads the store or the queues, so the
//! cost on S3 and SQS is the poller's alone (docs/benchmarks.md measures it).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::observe::observer::Connection;
use crate::observe::{metrics, ClusterView, NodeStatus, Observer};

/// Samples kept for the charts: at the local default of one round every 2 s, the last
/// 10 minutes (the length of a workshop demo); 50 minutes at the AWS default of 10 s.
const HISTORY_SAMPLES: usize = 300;

/// One point of the charts.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// Nodes per state (pending, running, draining, ...).
    pub nodes: BTreeMap<NodeStatus, u32>,
    pub slots_busy: u64,
    pub slots_total: u64,
    /// Rows done per job that was unfinished at this sample.
    pub rows: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub interval_seconds: f64,
    pub samples: VecDeque<Sample>,
}

impl History {
    fn push(&mut self, v: &ClusterView) {
        let mut nodes = BTreeMap::new();
        for n in &v.nodes {
            *nodes.entry(n.status).or_default() += 1;
        }
        let rows = v.jobs.iter().filter(|j| !j.state.is_final()).map(|j| (j.job_id.clone(), j.rows_done)).collect();
        if self.samples.len() == HISTORY_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample { at: v.observed_at, nodes, slots_busy: v.slots.busy, slots_total: v.slots.total, rows });
    }
}

/// What requests are answered with, rendered once per round.
pub struct Published {
    pub status_json: String,
    pub history_json: String,
    pub metrics: String,
    /// Rounds completed (0: the first is still running).
    pub rounds: u64,
}

pub type Shared = Arc<RwLock<Published>>;

fn publish(shared: &Shared, view: &ClusterView, history: &History, rounds: u64) {
    let p = Published {
        status_json: serde_json::to_string(view).unwrap_or_else(|e| format!("{{\"errors\":[\"cannot encode the status: {e}\"]}}")),
        history_json: serde_json::to_string(history).unwrap_or_else(|_| "{}".into()),
        metrics: metrics::render(view),
        rounds,
    };
    *shared.write().unwrap_or_else(|e| e.into_inner()) = p;
}

/// What the poller repeats: one observation round. [`Live`] reads the cluster; the
/// dashboard benchmark wraps the same observer's sources to count their requests.
pub trait Rounds: Send + 'static {
    /// The view before the first round.
    fn initial(&self) -> ClusterView;
    fn round(&mut self) -> impl std::future::Future<Output = ClusterView> + Send;
}

/// The cluster's own store and queues.
pub struct Live {
    pub observer: Observer,
    pub connection: Connection,
}

impl Rounds for Live {
    fn initial(&self) -> ClusterView {
        self.observer.last().clone()
    }
    async fn round(&mut self) -> ClusterView {
        self.connection.observe(&mut self.observer).await
    }
}

/// Start the poller on the current tokio runtime. The returned value is served at once
/// (an empty view: every section `never read`) and replaced after each round.
pub fn start(mut rounds: impl Rounds, every: Duration) -> (Shared, tokio::task::JoinHandle<()>) {
    let mut history = History { interval_seconds: every.as_secs_f64(), samples: VecDeque::new() };
    let shared: Shared =
        Arc::new(RwLock::new(Published { status_json: String::new(), history_json: String::new(), metrics: String::new(), rounds: 0 }));
    publish(&shared, &rounds.initial(), &history, 0);
    let out = shared.clone();
    let task = tokio::spawn(async move {
        // One round per interval, however long a round takes; a slow round delays the
        // next instead of letting rounds pile up.
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut done = 0;
        loop {
            tick.tick().await;
            let view = rounds.round().await;
            done += 1;
            history.push(&view);
            publish(&out, &view, &history, done);
        }
    });
    (shared, task)
}
