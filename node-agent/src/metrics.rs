//! The agent's own Prometheus metrics (docs/DESIGN.md, decision 14), for users who scrape
//! nodes directly: rows, unit (batch) latency, lease renewals, checkpoints, IMDS poll
//! errors. Off unless `--metrics-listen ADDR` (the cluster spec's `agent_metrics_port`) is
//! given: on EC2 an open port must also be allowed by the security group. The cluster-wide
//! picture is the dashboard's `/metrics`, which needs no port on any node.
//!
//! Counters are process-wide (one agent per process), incremented where the work happens.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{anyhow, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

struct AgentMetrics {
    registry: Registry,
    rows: Counter,
    unit_seconds: Histogram,
    lease_renewals: Family<Vec<(String, String)>, Counter>,
    checkpoints: Counter,
    imds_poll_errors: Counter,
    input_fetched_bytes: Counter,
    input_buffered_bytes: Gauge,
    output_buffered_bytes: Gauge,
    queue_receives: Family<Vec<(String, String)>, Counter>,
}

static METRICS: LazyLock<AgentMetrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let rows = Counter::default();
    registry.register("fleetform_agent_rows", "Input rows this agent processed (rows/s: rate())", rows.clone());
    // 5 ms .. ~40 s: a generator block takes milliseconds, a large row group of text seconds.
    let unit_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
    registry.register("fleetform_agent_unit_seconds", "Time to process one unit (input row group or generator block)", unit_seconds.clone());
    let lease_renewals = Family::default();
    registry.register("fleetform_agent_lease_renewals", "Lease renewals by outcome (ok, lost, error)", lease_renewals.clone());
    let checkpoints = Counter::default();
    registry.register("fleetform_agent_checkpoints", "Checkpoints written", checkpoints.clone());
    let imds_poll_errors = Counter::default();
    registry.register("fleetform_agent_imds_poll_errors", "Failed reads while polling for notices (IMDS requests, or the local notice file)", imds_poll_errors.clone());
    let input_fetched_bytes = Counter::default();
    registry.register("fleetform_agent_input_fetched_bytes", "Bytes of parquet input fetched from an object store (footers and column chunks)", input_fetched_bytes.clone());
    let input_buffered_bytes = Gauge::default();
    registry.register("fleetform_agent_input_buffered_bytes", "Input bytes held in memory: row groups being processed or prefetched", input_buffered_bytes.clone());
    let output_buffered_bytes = Gauge::default();
    registry.register("fleetform_agent_output_buffered_bytes", "Output bytes held in memory: chunks being written or uploaded to an object store", output_buffered_bytes.clone());
    let queue_receives = Family::default();
    registry.register("fleetform_agent_queue_receives", "Receive requests to the task queue by class and result (task, empty, error)", queue_receives.clone());
    AgentMetrics { registry, rows, unit_seconds, lease_renewals, checkpoints, imds_poll_errors, input_fetched_bytes, input_buffered_bytes, output_buffered_bytes, queue_receives }
});

/// One unit of a task processed: its input rows and how long it took.
pub fn unit_done(rows: u64, took: Duration) {
    METRICS.rows.inc_by(rows);
    METRICS.unit_seconds.observe(took.as_secs_f64());
}

/// `outcome`: `ok`, `lost` (another node owns the task) or `error`.
pub fn lease_renewal(outcome: &str) {
    METRICS.lease_renewals.get_or_create(&vec![("outcome".to_string(), outcome.to_string())]).inc();
}

pub fn checkpoint_written() {
    METRICS.checkpoints.inc();
}

pub fn imds_poll_errors(n: u64) {
    METRICS.imds_poll_errors.inc_by(n);
}

pub fn input_fetched(bytes: u64) {
    METRICS.input_fetched_bytes.inc_by(bytes);
}

/// Input bytes now held in memory grew (or, negative, shrank) by `delta`.
pub fn input_buffered(delta: i64) {
    METRICS.input_buffered_bytes.inc_by(delta);
}

/// Output bytes now held in memory grew (or, negative, shrank) by `delta`.
pub fn output_buffered(delta: i64) {
    METRICS.output_buffered_bytes.inc_by(delta);
}

/// `result`: `task` (at least one received), `empty` or `error`.
pub fn queue_receive(class: &str, result: &str) {
    METRICS.queue_receives.get_or_create(&vec![("class".to_string(), class.to_string()), ("result".to_string(), result.to_string())]).inc();
}

/// The metrics as OpenMetrics text.
pub fn render() -> String {
    let mut out = String::new();
    encode(&mut out, &METRICS.registry).expect("writing to a String cannot fail");
    out
}

/// Serve `/metrics` on `listen` (IP:PORT) from a thread of its own, for the process's life.
pub fn serve(listen: &str) -> Result<()> {
    let addr: std::net::SocketAddr =
        listen.parse().map_err(|_| anyhow!("--metrics-listen `{listen}` is not IP:PORT (e.g. 127.0.0.1:9108)"))?;
    let server = fleetform_runtime::http::Server::bind(addr).map_err(|e| anyhow!("--metrics-listen {listen}: cannot listen: {e}"))?;
    let serving = server.serve(std::sync::Arc::new(|req: &fleetform_runtime::http::Request| match req.path.as_str() {
        "/metrics" => fleetform_runtime::http::Response::new(200, "application/openmetrics-text; version=1.0.0; charset=utf-8", render()),
        _ => fleetform_runtime::http::Response::text(404, "the agent serves /metrics only\n"),
    }))?;
    // For the process's life: dropping it would stop the server.
    std::mem::forget(serving);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_appear_in_the_text_with_their_values() {
        super::checkpoint_written();
        super::unit_done(1000, std::time::Duration::from_millis(20));
        super::lease_renewal("ok");
        let text = super::render();
        assert!(text.contains("# TYPE fleetform_agent_rows counter"), "{text}");
        assert!(
            text.lines().any(|l| l.starts_with("fleetform_agent_rows_total ") && l.split(' ').nth(1).unwrap().parse::<u64>().unwrap() >= 1000),
            "{text}"
        );
        assert!(text.contains("fleetform_agent_lease_renewals_total{outcome=\"ok\"}"), "{text}");
        assert!(text.contains("fleetform_agent_unit_seconds_bucket{le=\"0.04\"}"), "{text}");
    }
}
