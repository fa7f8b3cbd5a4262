//! The view as Prometheus metrics (OpenMetrics text, through the Prometheus project's
//! `prometheus-client`). Names follow Prometheus conventions: counters end in `_total`
//! (the crate appends it), labels carry the dimensions. Every value comes from one
//! [`ClusterView`], so `/metrics` agrees with `/api/status` and the page.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::model::{ClusterView, NodeStatus};

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn gauges(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    registry.register(name, help, f.clone());
    f
}

fn counters(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    registry.register(name, help, f.clone());
    f
}

/// A metric without labels.
fn float(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn set(f: &Family<Labels, Gauge>, l: &[(&str, &str)], v: u64) {
    f.get_or_create(&labels(l)).set(v as i64);
}

/// The metrics text of a view.
pub fn render(v: &ClusterView) -> String {
    let mut r = Registry::default();
    nodes(&mut r, v);
    jobs(&mut r, v);
    let depth = gauges(&mut r, "fleetform_queue_depth", "Tasks waiting in the queue of a resource class");
    let in_flight = gauges(&mut r, "fleetform_queue_in_flight", "Tasks received and leased, not yet deleted");
    for q in &v.queues {
        set(&depth, &[("class", &q.class)], q.queued);
        set(&in_flight, &[("class", &q.class)], q.in_flight);
    }
    let launches = counters(&mut r, "fleetform_autoscaler_launches", "Nodes the autoscaler launched");
    if let Some(a) = &v.autoscaler {
        for (key, n) in &a.launches {
            let (node_type, market) = key.split_once('/').unwrap_or((key, ""));
            launches.get_or_create(&labels(&[("node_type", node_type), ("market", market)])).inc_by(*n);
        }
        float(&mut r, "fleetform_autoscaler_round_age_seconds", "Seconds since the autoscaler's latest round", a.age_seconds);
    }
    let interruptions =
        counters(&mut r, "fleetform_interruptions", "Nodes interrupted (spot notice, rebalance, scheduled event) seen by this process");
    for (kind, n) in &v.interruptions {
        interruptions.get_or_create(&labels(&[("kind", kind)])).inc_by(*n);
    }
    let at = v.observed_at.timestamp_millis() as f64 / 1000.0;
    float(&mut r, "fleetform_observed_timestamp_seconds", "When these figures were read (Unix time): alert on it to catch a stuck dashboard", at);
    float(&mut r, "fleetform_observe_errors", "Sources (store, queues) the latest observation could not read", v.errors.len() as f64);
    let mut out = String::new();
    encode(&mut out, &r).expect("writing to a String cannot fail");
    out
}

fn nodes(r: &mut Registry, v: &ClusterView) {
    let nodes = gauges(r, "fleetform_nodes", "Nodes by type, market and state");
    for t in &v.node_types {
        for state in NodeStatus::ALL {
            let n = t.nodes.get(&state).copied().unwrap_or(0);
            if n > 0 || state == NodeStatus::Running {
                set(&nodes, &[("node_type", &t.node_type), ("market", &t.market), ("state", state.as_str())], n as u64);
            }
        }
    }
    let slots = gauges(r, "fleetform_slots", "Task slots of the nodes that are up, busy or idle");
    set(&slots, &[("state", "busy")], v.slots.busy);
    set(&slots, &[("state", "idle")], v.slots.total.saturating_sub(v.slots.busy));
}

fn jobs(r: &mut Registry, v: &ClusterView) {
    let tasks = gauges(r, "fleetform_tasks", "Tasks of a job by state");
    let rows = counters(r, "fleetform_job_rows", "Input rows of a job's tasks done");
    let expected = gauges(r, "fleetform_job_input_rows", "Input rows of a job, all tasks");
    for j in &v.jobs {
        let queued = j.remaining().saturating_sub(j.running);
        for (state, n) in [("done", j.done), ("failed", j.failed), ("running", j.running), ("queued", queued)] {
            set(&tasks, &[("job", &j.job_id), ("state", state)], n);
        }
        rows.get_or_create(&labels(&[("job", &j.job_id)])).inc_by(j.rows_done);
        set(&expected, &[("job", &j.job_id)], j.total_rows);
    }
}
