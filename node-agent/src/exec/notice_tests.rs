//! The executor acts on notices the same way whichever source raised them: IMDS (EC2's;
//! here the test-support emulator behind a real `ImdsClient`) or the local provider's
//! notice file. A rebalance recommendation is a soft drain (no new task; it shows with the
//! scheduled events); a spot notice then drains the agent, which says why in its final
//! heartbeat.

use std::time::{Duration, Instant};

use chrono::Utc;
use fleetform_core::layout;
use fleetform_core::queue::{Depth, TaskQueue};
use fleetform_core::task::NodeHeartbeat;
use fleetform_testkit::imds::ImdsEmulator;

use super::failure_tests::TestAgent;
use super::receive::IDLE_POLL_MAX;
use crate::imds::{
    notice_file, notice_time, ImdsClient, NoticeSource, Rebalance, ScheduledEvent, SpotAction,
    SPOT_NOTICE_LEAD,
};

/// Notices are polled this often, so the test waits in tenths of a second.
const POLL: Duration = Duration::from_millis(100);

enum Notice {
    RebalanceAndReboot,
    Spot,
}

/// Starts an agent watching `source`, raises the notices with `raise`, checks the agent's
/// reaction to each.
async fn reacts_to_notices(source: NoticeSource, raise: impl Fn(Notice)) {
    let mut agent = TestAgent::start_watching(source, POLL).await;
    tokio::time::sleep(3 * POLL).await;
    assert_eq!(
        *agent.shared.draining.lock().unwrap(),
        None,
        "no notice, no drain"
    );

    raise(Notice::RebalanceAndReboot);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let draining = agent.shared.draining.lock().unwrap().clone();
        let scheduled = agent.shared.scheduled.lock().unwrap().clone();
        if draining.as_deref() == Some("rebalance")
            && scheduled.iter().any(|e| e.starts_with("system-reboot at "))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no soft drain on a rebalance: {draining:?}, {scheduled:?}"
        );
        tokio::time::sleep(POLL / 2).await;
    }
    assert!(
        !agent
            .shared
            .node
            .drain
            .load(std::sync::atomic::Ordering::SeqCst),
        "a rebalance is not a hard drain"
    );
    // Idle when the recommendation came: it takes no task submitted now (longer than the
    // receive loop's idle backoff, so a receive in flight would have had its chance).
    let out = agent.dir.join("out");
    let job = format!(
        "name: small\ninput: {{generate: {{rows: 100, seed: 1}}}}\noutput: {{uri: {}}}\n",
        out.display()
    );
    agent.submit_yaml(&job).await;
    tokio::time::sleep(IDLE_POLL_MAX + 4 * POLL).await;
    let depth = agent.shared.queue.depth("default").await.unwrap();
    assert_eq!(
        depth,
        Depth {
            visible: 1,
            in_flight: 0
        },
        "a node under a rebalance recommendation took a task"
    );

    raise(Notice::Spot);
    assert_eq!(
        agent.drained_within(Duration::from_secs(10)).await,
        "spot-interruption"
    );
    let last: NodeHeartbeat = agent
        .shared
        .store
        .get_json(&layout::node("test-node"))
        .await
        .unwrap()
        .expect("a final heartbeat");
    assert!(
        last.stopped && last.draining.as_deref() == Some("spot-interruption"),
        "{last:?}"
    );
    let _ = std::fs::remove_dir_all(&agent.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_imds_drains_on_its_notices() {
    let emulator = ImdsEmulator::start("i-0notices", "c7i.large", "us-east-1a").unwrap();
    let client = ImdsClient::new(Some(&emulator.endpoint())).unwrap();
    reacts_to_notices(NoticeSource::Imds(client), |notice| match notice {
        Notice::RebalanceAndReboot => {
            emulator.raise_rebalance();
            emulator.schedule_event("system-reboot", Duration::from_secs(3600));
        }
        Notice::Spot => emulator.raise_spot_interruption(SPOT_NOTICE_LEAD),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_a_notice_file_drains_on_its_notices() {
    let dir = std::env::temp_dir().join(format!("fleetform-notices-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(notice_file::FILE_NAME);
    reacts_to_notices(NoticeSource::File(path.clone()), |notice| {
        let now = Utc::now();
        notice_file::update(&path, |n| match notice {
            Notice::RebalanceAndReboot => {
                n.rebalance = Some(Rebalance {
                    notice_time: notice_time(now, Duration::ZERO),
                });
                n.scheduled.push(ScheduledEvent {
                    code: "system-reboot".into(),
                    not_before: crate::imds::format_scheduled_time(notice_time(
                        now,
                        Duration::from_secs(3600),
                    )),
                    state: "active".into(),
                    ..Default::default()
                });
            }
            Notice::Spot => {
                n.spot = Some(SpotAction {
                    action: "terminate".into(),
                    time: notice_time(now, SPOT_NOTICE_LEAD),
                })
            }
        })
        .unwrap();
    })
    .await;
    std::fs::remove_dir_all(dir).unwrap();
}
