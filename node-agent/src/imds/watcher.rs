//! The notice watcher: polls a node's [`NoticeSource`] (IMDS on EC2, the notice file on
//! the local provider) and publishes what it sees as [`NodeSignals`] on a
//! `tokio::sync::watch` channel. The executor awaits `changed()` and starts draining on a
//! spot notice; the heartbeat copies the latest value into the node's record for
//! `fleetform status`. Both sources go through the same fold (`next_signals`), so a
//! notice drains a local node exactly as it drains an EC2 instance.
use super::{notice_file, paths, ImdsClient, Rebalance, ScheduledEvent, SpotAction};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// How often the watcher polls. A spot notice gives two minutes; polling every 2 s costs
/// three loopback-fast HTTP reads and leaves about 118 s to drain. AWS recommends polling
/// every 5 s; we poll faster because every second of warning is a second of checkpointing.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Where a node's interruption notices come from.
#[derive(Debug, Clone)]
pub enum NoticeSource {
    /// IMDS: EC2's on an instance (tests point the client at an emulator).
    Imds(ImdsClient),
    /// A [`notice_file`]: the local provider, whose nodes have no IMDS.
    File(PathBuf),
}

/// What the node's notice source says about its future.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NodeSignals {
    /// The spot interruption notice. Once seen it stays set, even if a later read says 404
    /// or fails: the instance is going away either way, and the drain must not be undone.
    pub spot: Option<SpotAction>,
    /// The rebalance recommendation, as the source last reported it.
    pub rebalance: Option<Rebalance>,
    /// Scheduled maintenance events, as the source last reported them (kept on a failed
    /// read).
    pub scheduled: Vec<ScheduledEvent>,
    /// What went wrong in the latest poll, `None` when it read every notice.
    pub last_error: Option<String>,
}

/// Starts polling `source` every [`WATCH_INTERVAL`] on the current tokio runtime.
pub fn spawn_watcher(source: NoticeSource) -> watch::Receiver<NodeSignals> {
    spawn_watcher_with_interval(source, WATCH_INTERVAL)
}

/// [`spawn_watcher`] with another interval (tests use 100 ms). The first poll is
/// immediate. Read errors never stop the task: they are logged and published in
/// `last_error`, and the next tick tries again. The task ends when every receiver is gone.
pub fn spawn_watcher_with_interval(
    source: NoticeSource,
    interval: Duration,
) -> watch::Receiver<NodeSignals> {
    let (sender, receiver) = watch::channel(NodeSignals::default());
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        // After a slow poll, wait a full interval rather than firing a burst of catch-ups.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sender.closed() => break,
                _ = ticker.tick() => {}
            }
            let previous = sender.borrow().clone();
            let reading = read(&source).await;
            crate::metrics::imds_poll_errors(reading.errors().len() as u64);
            let next = next_signals(&previous, reading);
            log_change(&previous, &next);
            sender.send_if_modified(|current| {
                let changed = *current != next;
                *current = next;
                changed
            });
        }
    });
    receiver
}

/// One poll's answers; an error is the message to publish.
struct Reading {
    spot: Result<Option<SpotAction>, String>,
    rebalance: Result<Option<Rebalance>, String>,
    scheduled: Result<Vec<ScheduledEvent>, String>,
}

async fn read(source: &NoticeSource) -> Reading {
    match source {
        NoticeSource::Imds(client) => Reading {
            spot: client.spot_instance_action().await.map_err(|e| e.to_string()),
            rebalance: client.rebalance_recommendation().await.map_err(|e| e.to_string()),
            scheduled: client.scheduled_events().await.map_err(|e| e.to_string()),
        },
        // One file holds all three: it is read, or none of them is.
        NoticeSource::File(path) => match notice_file::read(path).await {
            Ok(notices) => Reading { spot: Ok(notices.spot), rebalance: Ok(notices.rebalance), scheduled: Ok(notices.scheduled) },
            Err(err) => {
                let err = err.to_string();
                Reading { spot: Err(err.clone()), rebalance: Err(err.clone()), scheduled: Err(err) }
            }
        },
    }
}

impl Reading {
    /// The poll's failed reads, each message once (IMDS's name their path, so three
    /// failed requests are three; a notice file that cannot be read is one).
    fn errors(&self) -> Vec<&str> {
        let mut errors: Vec<&str> = Vec::new();
        for err in [self.spot.as_ref().err(), self.rebalance.as_ref().err(), self.scheduled.as_ref().err()].into_iter().flatten() {
            if !errors.contains(&err.as_str()) {
                errors.push(err);
            }
        }
        errors
    }
}

/// Folds a poll into the previous signals: the rules above, as a pure function.
fn next_signals(previous: &NodeSignals, reading: Reading) -> NodeSignals {
    let mut next = previous.clone();
    let errors = reading.errors().join("; ");
    next.last_error = (!errors.is_empty()).then_some(errors);
    if let Ok(Some(spot)) = reading.spot {
        next.spot = Some(spot);
    }
    if let Ok(rebalance) = reading.rebalance {
        next.rebalance = rebalance;
    }
    if let Ok(scheduled) = reading.scheduled {
        next.scheduled = scheduled;
    }
    next
}

/// Notices at info/warn level; a failure repeating every poll is logged once, then at
/// debug level, so an unreachable IMDS (or a broken notice file) does not flood the
/// journal.
fn log_change(previous: &NodeSignals, next: &NodeSignals) {
    if next.spot != previous.spot {
        if let Some(spot) = &next.spot {
            tracing::warn!(action = %spot.action, time = %spot.time, path = paths::SPOT_INSTANCE_ACTION, "spot interruption notice");
        }
    }
    if next.rebalance != previous.rebalance {
        if let Some(rebalance) = &next.rebalance {
            tracing::info!(notice_time = %rebalance.notice_time, "rebalance recommendation");
        }
    }
    if next.scheduled != previous.scheduled && !next.scheduled.is_empty() {
        tracing::info!(events = ?next.scheduled, "scheduled maintenance events");
    }
    match (&next.last_error, &previous.last_error) {
        (Some(error), Some(before)) if error == before => {
            tracing::debug!(%error, "polling for notices failed again")
        }
        (Some(error), _) => tracing::warn!(%error, "polling for notices failed; will keep polling"),
        (None, Some(_)) => tracing::info!("polling for notices succeeded again"),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imds::{ImdsError, SPOT_NOTICE_LEAD};
    use chrono::{TimeZone, Utc};
    use fleetform_testkit::imds::ImdsEmulator;
    use tokio::time::{timeout, Instant};

    const INTERVAL: Duration = Duration::from_millis(100);

    fn spot() -> SpotAction {
        SpotAction {
            action: "terminate".into(),
            time: Utc.with_ymd_and_hms(2026, 11, 21, 21, 14, 0).unwrap(),
        }
    }

    fn failure() -> String {
        ImdsError::Status {
            path: paths::SCHEDULED_EVENTS.into(),
            status: 500,
        }
        .to_string()
    }

    #[test]
    fn a_spot_notice_stays_set_and_failures_keep_the_last_reading() {
        let event = ScheduledEvent {
            code: "system-reboot".into(),
            ..Default::default()
        };
        let first = next_signals(
            &NodeSignals::default(),
            Reading {
                spot: Ok(Some(spot())),
                rebalance: Ok(None),
                scheduled: Ok(vec![event.clone()]),
            },
        );
        assert_eq!(first.spot, Some(spot()));
        assert_eq!(first.last_error, None);

        let second = next_signals(
            &first,
            Reading {
                spot: Ok(None),
                rebalance: Ok(None),
                scheduled: Err(failure()),
            },
        );
        assert_eq!(second.spot, Some(spot()), "a notice is never withdrawn");
        assert_eq!(
            second.scheduled,
            vec![event],
            "a failed read keeps what was known"
        );
        assert!(second.last_error.as_deref().unwrap().contains("HTTP 500"));

        let third = next_signals(
            &second,
            Reading {
                spot: Err(failure()),
                rebalance: Ok(None),
                scheduled: Ok(vec![]),
            },
        );
        assert_eq!(third.spot, Some(spot()));
        assert!(third.scheduled.is_empty());
        assert!(third.last_error.is_some());
    }

    #[tokio::test]
    async fn sees_a_spot_notice_within_two_intervals() {
        let emulator = ImdsEmulator::start("i-0watcher", "m7g.large", "eu-west-1b").unwrap();
        let client = ImdsClient::new(Some(&emulator.endpoint())).unwrap();
        let mut signals = spawn_watcher_with_interval(NoticeSource::Imds(client), INTERVAL);
        // A first clean poll: nothing pending.
        timeout(
            Duration::from_secs(5),
            signals.wait_for(|s| s.last_error.is_none() && s.spot.is_none()),
        )
        .await
        .expect("first poll")
        .unwrap();
        tokio::time::sleep(INTERVAL).await;

        emulator.raise_spot_interruption(Duration::from_secs(120));
        // How soon: `a_notice_is_seen_at_the_next_poll_on_a_paused_clock`, exactly.
        let seen = timeout(Duration::from_secs(10), signals.wait_for(|s| s.spot.is_some()))
            .await
            .expect("spot notice seen")
            .unwrap()
            .clone();
        assert_eq!(seen.spot.as_ref().unwrap().action, "terminate");

        // EC2 never withdraws a notice, but even if IMDS forgot it the drain must go on.
        emulator.reset();
        emulator.raise_rebalance();
        let later = timeout(
            Duration::from_secs(5),
            signals.wait_for(|s| s.rebalance.is_some()),
        )
        .await
        .unwrap()
        .unwrap()
        .clone();
        assert_eq!(later.spot, seen.spot);
    }

    /// The poll schedule on tokio's paused clock, with the real interval: a notice
    /// written between two polls is seen at the next one, never later.
    #[tokio::test(start_paused = true)]
    async fn a_notice_is_seen_at_the_next_poll_on_a_paused_clock() {
        let dir = std::env::temp_dir().join(format!("fleetform-watch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(notice_file::FILE_NAME);
        let started = Instant::now();
        let mut signals = spawn_watcher(NoticeSource::File(file.clone()));
        tokio::time::sleep(WATCH_INTERVAL * 5 / 2).await; // polls at 0, 1 and 2 intervals
        assert_eq!(signals.borrow_and_update().spot, None);
        notice_file::update(&file, |n| n.spot = Some(spot())).unwrap();
        signals.wait_for(|s| s.spot.is_some()).await.unwrap();
        assert_eq!(started.elapsed(), WATCH_INTERVAL * 3, "seen at the third interval's poll, the first after the write");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn keeps_polling_through_imds_errors() {
        // Reserve a port, then free it: the watcher starts against a dead endpoint.
        let port = ImdsEmulator::start("i-0gone", "t3.micro", "us-east-1a")
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = ImdsClient::new(Some(&endpoint)).unwrap();
        let mut signals = spawn_watcher_with_interval(NoticeSource::Imds(client), INTERVAL);
        let failing = timeout(
            Duration::from_secs(5),
            signals.wait_for(|s| s.last_error.is_some()),
        )
        .await
        .expect("the error is published")
        .unwrap()
        .clone();
        assert!(failing
            .last_error
            .unwrap()
            .contains(paths::SPOT_INSTANCE_ACTION));

        // IMDS comes back with a notice: the same watcher task picks it up.
        let emulator = ImdsEmulator::start_on(port, "i-0back", "t3.micro", "us-east-1a").unwrap();
        emulator.raise_spot_interruption(Duration::from_secs(120));
        let recovered = timeout(
            Duration::from_secs(5),
            signals.wait_for(|s| s.spot.is_some() && s.last_error.is_none()),
        )
        .await
        .expect("the watcher survived the errors")
        .unwrap()
        .clone();
        assert_eq!(recovered.spot.unwrap().action, "terminate");
    }

    #[tokio::test]
    async fn a_notice_file_is_watched_like_imds() {
        let dir = std::env::temp_dir().join(format!("fleetform-watch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(notice_file::FILE_NAME);
        let mut signals = spawn_watcher_with_interval(NoticeSource::File(path.clone()), INTERVAL);
        // No file yet: a clean poll with nothing pending.
        timeout(
            Duration::from_secs(5),
            signals.wait_for(|s| *s == NodeSignals::default()),
        )
        .await
        .expect("first poll")
        .unwrap();
        tokio::time::sleep(INTERVAL).await;

        let spot = SpotAction {
            action: "terminate".into(),
            time: crate::imds::notice_time(Utc::now(), SPOT_NOTICE_LEAD),
        };
        notice_file::update(&path, |n| n.spot = Some(spot.clone())).unwrap();
        // How soon: `a_notice_is_seen_at_the_next_poll_on_a_paused_clock`, exactly.
        let seen = timeout(Duration::from_secs(10), signals.wait_for(|s| s.spot.is_some()))
            .await
            .expect("spot notice seen")
            .unwrap()
            .clone();
        assert_eq!(seen.spot, Some(spot));

        // A broken file is one error naming it; what was known stays, the drain goes on.
        std::fs::write(&path, "{not json").unwrap();
        let broken = timeout(
            Duration::from_secs(5),
            signals.wait_for(|s| s.last_error.is_some()),
        )
        .await
        .expect("the error is published")
        .unwrap()
        .clone();
        let error = broken.last_error.unwrap();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(!error.contains("; "), "one file, one error: {error}");
        assert_eq!(broken.spot, seen.spot);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
