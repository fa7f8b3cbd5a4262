//! The view as text: `fleetform status`, and each screen of `status --watch`.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::model::{ClusterView, JobView, NodeStatus, NodeView, Slots};

/// Jobs the text shows (newest first); the dashboard and `--json` have them all.
const JOBS_SHOWN: usize = 10;
/// Width of a slots bar, in characters.
const BAR_WIDTH: usize = 30;

/// `12s`, `4m 05s`, `2h 10m`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `84.3k`, `1.25M`.
pub fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn ago(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> String {
    match at {
        Some(t) => format!("read {} ago", duration((now - t).num_milliseconds() as f64 / 1000.0)),
        None => "never read".to_string(),
    }
}

/// `[██████░░░░]` for busy of total.
pub fn bar(busy: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 { 0 } else { ((busy as f64 / total as f64) * width as f64).round() as usize }.min(width);
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

fn percent(s: &Slots) -> String {
    if s.total == 0 {
        "-".into()
    } else {
        format!("{:.0}%", 100.0 * s.busy as f64 / s.total as f64)
    }
}

fn node_state(n: &NodeView) -> String {
    let state = status_word(n);
    if n.supervisor_gone {
        return format!("{state}, SUPERVISOR GONE (the `fleetform up`/`run` that started it has exited)");
    }
    state
}

fn status_word(n: &NodeView) -> String {
    let reason = n.reason.clone().unwrap_or_default();
    match n.status {
        NodeStatus::Pending => "pending (no heartbeat yet)".into(),
        NodeStatus::Running if n.busy_slots > 0 => "busy".into(),
        NodeStatus::Running => format!("idle {}", duration(n.idle_seconds.unwrap_or(0.0))),
        NodeStatus::Draining => format!("draining ({reason})"),
        NodeStatus::Interrupted => format!("interrupted ({reason})"),
        NodeStatus::Silent => format!("silent {}", duration(n.heartbeat_age_seconds.unwrap_or(0.0))),
        NodeStatus::Stopped => format!("stopped ({reason})"),
    }
}

/// The whole text, ending with a newline.
pub fn render(v: &ClusterView) -> String {
    let mut o = String::new();
    let now = v.observed_at;
    let provider = if v.provider == "aws" { "Aws" } else { "Local" };
    let _ = writeln!(o, "cluster {} ({provider} provider) at {}", v.cluster, now.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(o, "store {}  queue {}", v.store, v.queue);
    for e in &v.errors {
        let _ = writeln!(o, "\n!! {e}");
    }
    nodes(&mut o, v);
    queues(&mut o, v);
    jobs(&mut o, v);
    events(&mut o, v);
    autoscaler(&mut o, v);
    o
}

fn nodes(o: &mut String, v: &ClusterView) {
    let up = v.nodes.iter().filter(|n| n.status.is_up()).count();
    let _ = writeln!(
        o,
        "\nNODES  {up} up, {}/{} slots busy ({})  [heartbeats {}]",
        v.slots.busy,
        v.slots.total,
        percent(&v.slots),
        ago(v.observed_at, v.nodes_at)
    );
    if v.nodes.is_empty() {
        let _ = writeln!(o, "  none reporting");
    }
    for n in &v.nodes {
        let beat = n.heartbeat_age_seconds.map(|a| format!("  heartbeat {} ago", duration(a))).unwrap_or_default();
        let scheduled = if n.scheduled_events.is_empty() { String::new() } else { format!("  scheduled: {}", n.scheduled_events.join("; ")) };
        let _ = writeln!(
            o,
            "  {:<22} {:<12} {:<7} {:<9} {}/{} slots busy {:>6} tasks {:>10} rows  {}{beat}{scheduled}",
            n.node_id,
            n.node_type,
            n.arch,
            n.market,
            n.busy_slots,
            n.slots,
            n.tasks_done,
            n.rows_done,
            node_state(n)
        );
        if let Some(failed) = &n.setup_failed {
            let _ = writeln!(o, "    setup_commands failed: {failed} (log: {} on the node)", fleetform_core::layout::SETUP_LOG);
        }
    }
    let _ = writeln!(o, "\nSLOTS IN USE");
    for t in v.node_types.iter().filter(|t| !t.head || t.slots.total > 0) {
        let counts: Vec<String> = t.nodes.iter().map(|(s, n)| format!("{n} {}", s.as_str())).collect();
        let counts = if counts.is_empty() { "no nodes".to_string() } else { counts.join(", ") };
        let _ = writeln!(
            o,
            "  {:<12} {:<7} {:<9} {} {:>4}/{:<4} {:>4}  {counts}",
            t.node_type,
            t.arch,
            t.market,
            bar(t.slots.busy, t.slots.total, BAR_WIDTH),
            t.slots.busy,
            t.slots.total,
            percent(&t.slots)
        );
    }
}

fn queues(o: &mut String, v: &ClusterView) {
    let _ = writeln!(o, "\nQUEUES  [{}]", ago(v.observed_at, v.queues_at));
    for q in &v.queues {
        let _ = writeln!(
            o,
            "  {:<16} {:>6} queued, {} in flight   {} tasks left in unfinished jobs, {} running on nodes",
            q.class, q.queued, q.in_flight, q.tasks_remaining, q.running_on_nodes
        );
    }
}

fn job_line(j: &JobView) -> String {
    let rate = j.rows_per_second.map(|r| format!("  {} rows/s", human(r))).unwrap_or_default();
    let eta = j.eta_seconds.map(|e| format!("  ETA {}", duration(e))).unwrap_or_default();
    let running = if j.running > 0 { format!(", {} running", j.running) } else { String::new() };
    format!(
        "  {:<40} {}/{} done  {} failed{running}  {}  {}/{} rows{rate}{eta}",
        j.job_id,
        j.done,
        j.tasks,
        j.failed,
        j.state.as_str(),
        j.rows_done,
        j.total_rows
    )
}

fn jobs(o: &mut String, v: &ClusterView) {
    let _ = writeln!(o, "\nJOBS  [{}]", ago(v.observed_at, v.jobs_at));
    if v.jobs.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for j in v.jobs.iter().take(JOBS_SHOWN) {
        let _ = writeln!(o, "{}", job_line(j));
        for f in &j.failures {
            let _ = writeln!(o, "    failed {} {}: {}", f.task_id, f.input, f.error);
        }
    }
    if v.jobs.len() > JOBS_SHOWN {
        let _ = writeln!(o, "  ... and {} older (`fleetform job list`)", v.jobs.len() - JOBS_SHOWN);
    }
}

fn events(o: &mut String, v: &ClusterView) {
    if v.events.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nEVENTS");
    for e in v.events.iter().take(10) {
        let _ = writeln!(o, "  {} {} ({}) {}", e.at.format("%H:%M:%S"), e.node_id, e.node_type, e.detail);
    }
}

fn autoscaler(o: &mut String, v: &ClusterView) {
    if let Some(f) = &v.autoscaler_failing {
        let _ = writeln!(
            o,
            "\nAUTOSCALER FAILING  [{} round{} in a row; latest at {}, next try at {}]\n  {}",
            f.rounds,
            if f.rounds == 1 { "" } else { "s" },
            f.last.at.format("%H:%M:%S UTC"),
            f.last.retry_at.format("%H:%M:%S UTC"),
            f.last.message
        );
    }
    let Some(a) = &v.autoscaler else {
        let _ = writeln!(o, "\nAUTOSCALER\n  no round yet (`fleetform reconcile`, or `fleetform up` on the local provider)");
        return;
    };
    let _ = writeln!(o, "\nAUTOSCALER  [round at {}, {} ago]", a.at.format("%H:%M:%S UTC"), duration(a.age_seconds));
    if let Some(note) = &a.note {
        // A stale round's table and demand would contradict the live figures above.
        let _ = writeln!(o, "  stale: {note}");
        for h in &a.round.recent {
            let _ = writeln!(o, "  {} {}", h.at.format("%H:%M:%S"), h.line);
        }
        return;
    }
    let _ = write!(o, "{}", a.round);
}
