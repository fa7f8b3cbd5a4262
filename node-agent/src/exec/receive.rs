//! Receiving tasks: one receive in flight per class at a time, all classes at once, so a
//! task of any class starts as soon as it is sent. On SQS each receive long-polls (waits
//! up to 20 s for a message to arrive): an idle agent asks once per class per 20 s, and a
//! new task is picked up when it arrives, not at the next poll. On SQLite a receive
//! answers at once and an idle class is asked again after a backoff of up to a second.
//!
//! A receive may answer while every slot is busy; its messages then wait for the loop's
//! next call. Messages that waited longer than a quarter of the lease go back to the
//! queue (their lease is not renewed until a task starts) rather than start late.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use fleetform_core::queue::{QueueError, Received, TaskQueue};
use tokio::task::JoinSet;
use tracing::warn;

use fleetform_runtime::queue::Queue;

/// The longest pause between two receives of an idle class on a queue without long
/// polling: a new job starts within a second, idle agents cost little.
pub const IDLE_POLL_MAX: Duration = Duration::from_secs(1);
/// After failed receives a class backs off up to this (a queue outage is not a hot loop).
const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(20);
/// A receive that has not answered after its long poll and this much more is given up
/// (a frozen endpoint must not stop the loop).
const RECEIVE_GRACE: Duration = Duration::from_secs(10);
/// SQS returns at most 10 messages per receive.
const MAX_BATCH: usize = 10;

type Answer = (String, Instant, Result<Vec<Received>, QueueError>);

pub struct Receiver {
    queue: Queue,
    classes: Vec<String>,
    lease: Duration,
    polls: JoinSet<Answer>,
    polling: HashSet<String>,
    /// Each class's pause before its next receive.
    delay: HashMap<String, Duration>,
}

impl Receiver {
    pub fn new(queue: Queue, classes: Vec<String>, lease: Duration) -> Receiver {
        Receiver { queue, classes, lease, polls: JoinSet::new(), polling: HashSet::new(), delay: HashMap::new() }
    }

    /// The next messages of one class, at most `want` (a batch for the free slots).
    /// Cancel-safe: receives keep running, and their answers wait for the next call.
    pub async fn next(&mut self, want: usize) -> Vec<(String, Received)> {
        loop {
            self.start_polls(want);
            let Some(joined) = self.polls.join_next().await else {
                return std::future::pending().await; // serves no class
            };
            let Ok((class, at, answer)) = joined else { continue }; // a receive panicked: asked again
            self.polling.remove(&class);
            match answer {
                Ok(v) if !v.is_empty() => {
                    crate::metrics::queue_receive(&class, "task");
                    self.delay.remove(&class);
                    if at.elapsed() > self.lease / 4 {
                        self.give_back(&class, v);
                        continue;
                    }
                    return v.into_iter().map(|m| (class.clone(), m)).collect();
                }
                Ok(_) => {
                    crate::metrics::queue_receive(&class, "empty");
                    let idle = if self.queue.long_poll().is_zero() { self.backoff(&class, Duration::from_millis(50), IDLE_POLL_MAX) } else { Duration::ZERO };
                    self.delay.insert(class, idle);
                }
                Err(e) => {
                    crate::metrics::queue_receive(&class, "error");
                    warn!(%class, "receive failed: {e}");
                    let pause = self.backoff(&class, Duration::from_secs(1), ERROR_BACKOFF_MAX);
                    self.delay.insert(class, pause);
                }
            }
        }
    }

    /// Messages not wanted after all (no slot for them): back to the queue at once.
    pub fn give_back(&self, class: &str, messages: Vec<Received>) {
        let (queue, class) = (self.queue.clone(), class.to_string());
        tokio::spawn(async move {
            for m in messages {
                if let Err(e) = queue.release(&class, &m.handle).await {
                    warn!(%class, "cannot hand a task back: {e}");
                }
            }
        });
    }

    /// On drain: wait for the receives in flight and hand back what they bring.
    pub async fn close(mut self) {
        while let Some(joined) = self.polls.join_next().await {
            if let Ok((class, _, Ok(v))) = joined {
                for m in v {
                    let _ = self.queue.release(&class, &m.handle).await;
                }
            }
        }
    }

    fn start_polls(&mut self, want: usize) {
        for class in &self.classes {
            if !self.polling.insert(class.clone()) {
                continue;
            }
            let (queue, class, lease) = (self.queue.clone(), class.clone(), self.lease);
            let delay = self.delay.get(&class).copied().unwrap_or_default();
            let max = want.clamp(1, MAX_BATCH);
            let limit = queue.long_poll() + RECEIVE_GRACE;
            self.polls.spawn(async move {
                tokio::time::sleep(delay).await;
                let answer = match tokio::time::timeout(limit, queue.receive_waiting(&class, max, lease)).await {
                    Ok(a) => a,
                    Err(_) => Err(QueueError::Backend(format!("no answer to a receive within {} s", limit.as_secs()))),
                };
                (class, Instant::now(), answer)
            });
        }
    }

    fn backoff(&self, class: &str, first: Duration, max: Duration) -> Duration {
        self.delay.get(class).map_or(first, |d| (*d * 2).clamp(first, max))
    }
}
