//! [`Observer`]: reads the store and the queues into a [`ClusterView`], round after
//! round, remembering what cannot change (see `jobs`) and the recent rounds (rows/s over
//! a window, events as they arrive). A section whose source fails keeps its previous
//! figures and time, and the failure is named in `errors`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::queue::TaskQueue;
use fleetform_core::spec::{ClusterSpec, ProviderKind};
use fleetform_core::task::NodeHeartbeat;

use super::jobs::{running_per_job, JobCache};
use super::model::{AutoscalerFailing, AutoscalerView, ClusterView, NodeEvent, QueueView};
use super::nodes::{node_views, total_slots, type_views};
use super::{EVENTS_KEPT, RATE_WINDOW_SECONDS, READ_TIMEOUT};
use crate::autoscaler::run::{heartbeats, Persisted, LOCAL_ROUND};
use crate::cluster::Handles;

/// An autoscaler round older than this many rounds is stale: nothing is re-planning.
const STALE_ROUNDS: f64 = 4.0;
/// The AWS autoscaler's round: `fleetform reconcile --watch`'s default interval.
const AWS_ROUND_SECONDS: f64 = 15.0;
/// Drain reasons that are the cloud's doing (the `fleetform_interruptions_total` kinds);
/// SIGTERM and the autoscaler's own drains are events, not interruptions.
const INTERRUPTION_KINDS: [&str; 3] = ["spot-interruption", "rebalance", "scheduled"];

pub struct Observer {
    spec: ClusterSpec,
    handles: Handles,
    jobs: JobCache,
    last: ClusterView,
    events: BTreeMap<(String, String), NodeEvent>,
    interrupted: BTreeMap<String, BTreeSet<String>>,
    /// Rows done per job at each recent round, oldest first.
    samples: VecDeque<(DateTime<Utc>, HashMap<String, u64>)>,
}

/// Run one read with [`READ_TIMEOUT`]: object_store retries a dead endpoint for minutes.
async fn bounded<T>(what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(READ_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.context(what.to_string())),
        Err(_) => Err(anyhow!("{what}: no answer within {}s", READ_TIMEOUT.as_secs())),
    }
}

impl Observer {
    pub fn new(spec: &ClusterSpec, handles: &Handles) -> Observer {
        let last = ClusterView {
            cluster: spec.cluster_name.clone(),
            provider: match spec.provider.kind {
                ProviderKind::Local => "local".into(),
                ProviderKind::Aws => "aws".into(),
            },
            store: handles.store_uri.clone(),
            queue: handles.queue_uri.clone(),
            observed_at: Utc::now(),
            errors: Vec::new(),
            nodes_at: None,
            nodes: Vec::new(),
            node_types: Vec::new(),
            slots: Default::default(),
            queues_at: None,
            queues: Vec::new(),
            jobs_at: None,
            jobs: Vec::new(),
            autoscaler: None,
            autoscaler_failing: None,
            events: Vec::new(),
            interruptions: BTreeMap::new(),
        };
        Observer {
            spec: spec.clone(),
            handles: handles.clone(),
            jobs: JobCache::default(),
            last,
            events: BTreeMap::new(),
            interrupted: BTreeMap::new(),
            samples: VecDeque::new(),
        }
    }

    /// The latest view (before the first round: empty, every `*_at` None).
    pub fn last(&self) -> &ClusterView {
        &self.last
    }

    /// One round. `store`/`queue` are Err when they could not be opened.
    pub async fn observe<Q: TaskQueue>(&mut self, store: Result<&Store, String>, queue: Result<&Q, String>) -> ClusterView {
        let mut v = self.last.clone();
        v.errors.clear();
        let mut running = HashMap::new();
        match store {
            Ok(store) => {
                match bounded(&format!("cannot read the node heartbeats in {}", store.uri()), heartbeats(store)).await {
                    Ok(beats) => {
                        running = running_per_job(&beats);
                        self.nodes_section(&mut v, &beats);
                        self.note_events(&beats);
                    }
                    Err(e) => v.errors.push(crate::errors::render(&e)),
                }
                match bounded(&format!("cannot read the jobs in {}", store.uri()), self.jobs.refresh(store, &running)).await {
                    Ok(()) => self.jobs_section(&mut v, &running),
                    Err(e) => v.errors.push(crate::errors::render(&e)),
                }
                match bounded(
                    &format!("cannot read the autoscaler's state in {}", store.uri()),
                    store.get_json::<Persisted>(layout::autoscaler_state()),
                )
                .await
                {
                    Ok(p) => {
                        v.autoscaler_failing = p.as_ref().and_then(failing);
                        v.autoscaler = p.and_then(|p| self.autoscaler_view(p));
                    }
                    Err(e) => v.errors.push(crate::errors::render(&e)),
                }
            }
            Err(e) => v.errors.push(format!("cannot open the cluster store {}: {e}", self.handles.store_uri)),
        }
        match queue {
            Ok(q) => match bounded(&format!("cannot read the queue depths of {}", self.handles.queue_uri), self.queues_section(q, &v)).await {
                Ok(queues) => {
                    v.queues = queues;
                    v.queues_at = Some(Utc::now());
                }
                Err(e) => v.errors.push(crate::errors::render(&e)),
            },
            Err(e) => v.errors.push(format!("cannot open the queues {}: {e}", self.handles.queue_uri)),
        }
        v.events = self.events.values().cloned().collect();
        v.events.sort_by_key(|e| std::cmp::Reverse(e.at));
        v.events.truncate(EVENTS_KEPT);
        v.interruptions = self.interrupted.iter().map(|(k, nodes)| (k.clone(), nodes.len() as u64)).collect();
        v.observed_at = Utc::now();
        self.last = v.clone();
        v
    }

    fn nodes_section(&self, v: &mut ClusterView, beats: &HashMap<String, NodeHeartbeat>) {
        let now = Utc::now();
        let launched: Vec<(String, String)> = match self.spec.provider.kind {
            ProviderKind::Local => crate::local::published::published_nodes(&self.handles).into_iter().map(|n| (n.node_id, n.node_type)).collect(),
            ProviderKind::Aws => Vec::new(),
        };
        v.nodes = node_views(&self.spec, beats, &launched, now);
        if self.spec.provider.kind == ProviderKind::Local {
            // A local node is up only under the supervisor that started it (its agents
            // follow it: PR_SET_PDEATHSIG); one that says otherwise is marked.
            for n in v.nodes.iter_mut().filter(|n| n.status.is_up()) {
                n.supervisor_gone = !launched.iter().any(|(id, _)| *id == n.node_id);
            }
        }
        v.node_types = type_views(&self.spec, &v.nodes);
        v.slots = total_slots(&v.node_types);
        v.nodes_at = Some(now);
    }

    /// Remember drains and scheduled events the first time a heartbeat shows them.
    fn note_events(&mut self, beats: &HashMap<String, NodeHeartbeat>) {
        for hb in beats.values() {
            let mut seen: Vec<(String, String)> = hb.draining.iter().map(|r| (r.clone(), format!("draining: {r}"))).collect();
            seen.extend(hb.scheduled_events.iter().map(|e| ("scheduled".to_string(), e.clone())));
            for (kind, detail) in seen {
                let key = (hb.node_id.clone(), format!("{kind} {detail}"));
                self.events.entry(key).or_insert_with(|| NodeEvent {
                    at: hb.updated_at,
                    node_id: hb.node_id.clone(),
                    node_type: hb.node_type.clone(),
                    kind: kind.clone(),
                    detail,
                });
                if INTERRUPTION_KINDS.contains(&kind.as_str()) {
                    self.interrupted.entry(kind).or_default().insert(hb.node_id.clone());
                }
            }
        }
        while self.events.len() > 4 * EVENTS_KEPT {
            let oldest = self.events.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone());
            oldest.map(|k| self.events.remove(&k));
        }
    }

    fn jobs_section(&mut self, v: &mut ClusterView, running: &HashMap<String, u64>) {
        let now = Utc::now();
        let rates = self.window_rates(now);
        v.jobs = self.jobs.views(running, &rates, now);
        self.samples.push_back((now, v.jobs.iter().map(|j| (j.job_id.clone(), j.rows_done)).collect()));
        // Keep one sample older than the window, so the window is always covered.
        while self.samples.len() > 2 && (now - self.samples[1].0).num_seconds() as f64 >= RATE_WINDOW_SECONDS {
            self.samples.pop_front();
        }
        v.jobs_at = Some(now);
    }

    /// Rows/s per job since the oldest kept sample (None before two rounds a second apart).
    fn window_rates(&self, now: DateTime<Utc>) -> HashMap<String, (f64, f64)> {
        let Some((then, rows_then)) = self.samples.front() else { return HashMap::new() };
        let secs = (now - *then).num_milliseconds() as f64 / 1000.0;
        if secs < 1.0 {
            return HashMap::new();
        }
        let Some((_, rows_now)) = self.samples.back() else { return HashMap::new() };
        rows_now.iter().map(|(job, rows)| (job.clone(), (rows.saturating_sub(*rows_then.get(job).unwrap_or(&0)) as f64 / secs, secs))).collect()
    }

    fn autoscaler_view(&self, p: Persisted) -> Option<AutoscalerView> {
        let round = p.status?;
        let age = (Utc::now() - round.at).num_milliseconds().max(0) as f64 / 1000.0;
        let (every, runner) = match self.spec.provider.kind {
            ProviderKind::Local => (LOCAL_ROUND.as_secs_f64(), "it runs inside `fleetform up` (and `fleetform run` while a run lasts)"),
            ProviderKind::Aws => (AWS_ROUND_SECONDS, "it runs as `fleetform reconcile --watch` on the head node"),
        };
        let stale = age > STALE_ROUNDS * every;
        let note = stale.then(|| format!("no autoscaler round for {}: {runner}; what it last saw is history, not now", super::text::duration(age)));
        Some(AutoscalerView { at: round.at, age_seconds: age, stale, note, launches: p.state.launches, round })
    }

    async fn queues_section<Q: TaskQueue>(&self, queue: &Q, v: &ClusterView) -> Result<Vec<QueueView>> {
        let mut classes: Vec<String> = self.spec.worker_types().flat_map(|(_, t)| t.resources.served_classes()).map(|c| c.slug()).collect();
        classes.extend(v.jobs.iter().map(|j| j.class.clone()));
        classes.sort();
        classes.dedup();
        let depths = futures::future::join_all(classes.iter().map(|c| queue.depth(c))).await;
        let mut out = Vec::new();
        for (class, depth) in classes.into_iter().zip(depths) {
            let d = depth.map_err(|e| anyhow!("queue `{class}`: {e}"))?;
            let open = v.jobs.iter().filter(|j| j.class == class && !j.state.is_final());
            let (remaining, running) = open.fold((0, 0), |(r, n), j| (r + j.remaining(), n + j.running));
            out.push(QueueView { class, queued: d.visible, in_flight: d.in_flight, tasks_remaining: remaining, running_on_nodes: running });
        }
        Ok(out)
    }
}

/// The autoscaler's failing rounds, from its persisted state.
fn failing(p: &Persisted) -> Option<AutoscalerFailing> {
    let last = p.failures.last.clone().filter(|_| p.failures.consecutive > 0)?;
    Some(AutoscalerFailing { rounds: p.failures.consecutive, last })
}

/// The store and the queues of a cluster, opened on first use and again after a failure,
/// so a dashboard started before its store is reachable recovers by itself.
pub struct Connection {
    handles: Handles,
    store: Option<Store>,
    queue: Option<fleetform_runtime::queue::Queue>,
}

impl Connection {
    pub fn new(handles: &Handles) -> Connection {
        Connection { handles: handles.clone(), store: None, queue: None }
    }

    /// One round of `observer` on this cluster's store and queues.
    pub async fn observe(&mut self, observer: &mut Observer) -> ClusterView {
        let mut store_err = String::new();
        if self.store.is_none() {
            match bounded("opening", self.handles.store()).await {
                Ok(s) => self.store = Some(s),
                Err(e) => store_err = crate::errors::render(&e),
            }
        }
        let mut queue_err = String::new();
        if self.queue.is_none() {
            match bounded("opening", self.handles.queue()).await {
                Ok(q) => self.queue = Some(q),
                Err(e) => queue_err = crate::errors::render(&e),
            }
        }
        observer.observe(self.store.as_ref().ok_or(store_err), self.queue.as_ref().ok_or(queue_err)).await
    }
}
