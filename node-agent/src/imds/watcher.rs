//! The IMDS watcher: polls the interruption paths and publishes what it sees as
//! [`NodeSignals`] on a `tokio::sync::watch` channel. The executor awaits `changed()` and
//! starts draining on a spot notice; the heartbeat copies the latest value into the node's
//! record for `fleetform status`.
use super::{paths, ImdsClient, ImdsError, Rebalance, ScheduledEvent, SpotAction};
use serde::Serialize;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// How often the watcher polls. A spot notice gives two minutes; polling every 2 s costs
/// three loopback-fast HTTP reads and leaves about 118 s to drain. AWS recommends polling
/// every 5 s; we poll faster because every second of warning is a second of checkpointing.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What IMDS says about this node's future.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NodeSignals {
    /// The spot interruption notice. Once seen it stays set, even if a later read says 404
    /// or fails: the instance is going away either way, and the drain must not be undone.
    pub spot: Option<SpotAction>,
    /// The rebalance recommendation, as IMDS last reported it.
    pub rebalance: Option<Rebalance>,
    /// Scheduled maintenance events, as IMDS last reported them (kept on a failed read).
    pub scheduled: Vec<ScheduledEvent>,
    /// What went wrong in the latest poll, `None` when it read every path.
    pub last_error: Option<String>,
}

/// Starts polling IMDS every [`WATCH_INTERVAL`] on the current tokio runtime.
pub fn spawn_watcher(client: ImdsClient) -> watch::Receiver<NodeSignals> {
    spawn_watcher_with_interval(client, WATCH_INTERVAL)
}

/// [`spawn_watcher`] with another interval (tests use 100 ms). The first poll is
/// immediate. IMDS errors never stop the task: they are logged and published in
/// `last_error`, and the next tick tries again. The task ends when every receiver is gone.
pub fn spawn_watcher_with_interval(
    client: ImdsClient,
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
            let reading = read(&client).await;
            crate::metrics::imds_poll_errors(reading.errors());
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

/// One poll's answers.
struct Reading {
    spot: Result<Option<SpotAction>, ImdsError>,
    rebalance: Result<Option<Rebalance>, ImdsError>,
    scheduled: Result<Vec<ScheduledEvent>, ImdsError>,
}

async fn read(client: &ImdsClient) -> Reading {
    Reading {
        spot: client.spot_instance_action().await,
        rebalance: client.rebalance_recommendation().await,
        scheduled: client.scheduled_events().await,
    }
}

impl Reading {
    /// How many of the poll's requests failed.
    fn errors(&self) -> u64 {
        [self.spot.is_err(), self.rebalance.is_err(), self.scheduled.is_err()].iter().filter(|e| **e).count() as u64
    }
}

/// Folds a poll into the previous signals: the rules above, as a pure function.
fn next_signals(previous: &NodeSignals, reading: Reading) -> NodeSignals {
    let mut next = previous.clone();
    let mut errors = Vec::new();
    match reading.spot {
        Ok(Some(spot)) => next.spot = Some(spot),
        Ok(None) => {}
        Err(err) => errors.push(err.to_string()),
    }
    match reading.rebalance {
        Ok(rebalance) => next.rebalance = rebalance,
        Err(err) => errors.push(err.to_string()),
    }
    match reading.scheduled {
        Ok(scheduled) => next.scheduled = scheduled,
        Err(err) => errors.push(err.to_string()),
    }
    next.last_error = (!errors.is_empty()).then(|| errors.join("; "));
    next
}

/// Notices at info/warn level; a failure repeating every poll is logged once, then at
/// debug level, so an unreachable IMDS does not flood the journal.
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
            tracing::debug!(%error, "IMDS poll failed again")
        }
        (Some(error), _) => tracing::warn!(%error, "IMDS poll failed; will keep polling"),
        (None, Some(_)) => tracing::info!("IMDS poll succeeded again"),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imds::ImdsEmulator;
    use chrono::{TimeZone, Utc};
    use tokio::time::{timeout, Instant};

    const INTERVAL: Duration = Duration::from_millis(100);
    const SLACK: Duration = Duration::from_millis(800);

    fn spot() -> SpotAction {
        SpotAction {
            action: "terminate".into(),
            time: Utc.with_ymd_and_hms(2026, 11, 21, 21, 14, 0).unwrap(),
        }
    }

    fn failure() -> ImdsError {
        ImdsError::Status {
            path: paths::SCHEDULED_EVENTS.into(),
            status: 500,
        }
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
        let mut signals = spawn_watcher_with_interval(client, INTERVAL);
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
        let raised = Instant::now();
        // At most one interval until the next poll, plus the poll itself; the slack is for
        // a machine busy compiling.
        let deadline = 2 * INTERVAL + SLACK;
        let seen = timeout(deadline, signals.wait_for(|s| s.spot.is_some()))
            .await
            .expect("spot notice seen within about two intervals")
            .unwrap()
            .clone();
        assert_eq!(seen.spot.as_ref().unwrap().action, "terminate");
        assert!(raised.elapsed() <= deadline);

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

    #[tokio::test]
    async fn keeps_polling_through_imds_errors() {
        // Reserve a port, then free it: the watcher starts against a dead endpoint.
        let port = ImdsEmulator::start("i-0gone", "t3.micro", "us-east-1a")
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = ImdsClient::new(Some(&endpoint)).unwrap();
        let mut signals = spawn_watcher_with_interval(client, INTERVAL);
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
}
