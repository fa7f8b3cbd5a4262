//! `fleetform status [--json] [--watch [--interval S]]`: the cluster's [`ClusterView`]
//! (nodes, slots, queues, jobs, events, the autoscaler's latest round), once or as a
//! full-screen refresh like `watch -n 1 ray status`.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::cluster::{self, Handles};
use crate::observe::observer::Connection;
use crate::observe::{text, ClusterView, Observer};

/// Clear the screen and home the cursor (ANSI), before each `--watch` screen.
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";
/// The shortest `--watch` interval: each round reads every heartbeat.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

pub async fn show(file: &Path, json: bool, watch: bool, interval: f64) -> Result<i32> {
    let spec = cluster::load(file)?;
    let handles = Handles::of(&spec).await?;
    let mut observer = Observer::new(&spec, &handles);
    let mut connection = Connection::new(&handles);
    if !watch {
        let view = connection.observe(&mut observer).await;
        crate::out::stdout(&render(&view, json)?)?;
        return Ok(if view.errors.is_empty() { 0 } else { 1 });
    }
    let every = Duration::from_secs_f64(interval.max(0.0)).max(MIN_INTERVAL);
    loop {
        let view = connection.observe(&mut observer).await;
        let screen = format!("{CLEAR_SCREEN}every {}s (Ctrl-C stops)\n{}", every.as_secs_f64(), render(&view, json)?);
        if !crate::out::stdout(&screen)? {
            return Ok(0);
        }
        tokio::time::sleep(every).await;
    }
}

fn render(view: &ClusterView, json: bool) -> Result<String> {
    Ok(if json { format!("{}\n", serde_json::to_string_pretty(view)?) } else { text::render(view) })
}
