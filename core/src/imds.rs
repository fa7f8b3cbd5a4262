//! The instance metadata service's (IMDSv2) wire contract, as far as fleetform reads it:
//! the paths, the session headers and the JSON documents of the three interruption
//! notices, in IMDS's own field names.
//!
//! One definition shared by the agent's client and watcher, the local provider's notice
//! file (same documents, no HTTP) and the test-support IMDS emulator (`fleetform-testkit`),
//! so none of them can drift from the others.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// IMDS paths, relative to the endpoint.
pub mod paths {
    pub const TOKEN: &str = "/latest/api/token";
    pub const INSTANCE_ID: &str = "/latest/meta-data/instance-id";
    pub const INSTANCE_TYPE: &str = "/latest/meta-data/instance-type";
    pub const AVAILABILITY_ZONE: &str = "/latest/meta-data/placement/availability-zone";
    pub const SPOT_INSTANCE_ACTION: &str = "/latest/meta-data/spot/instance-action";
    pub const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";
    pub const SCHEDULED_EVENTS: &str = "/latest/meta-data/events/maintenance/scheduled";
}

/// Header names of the IMDSv2 session protocol.
pub mod headers {
    /// On `PUT /latest/api/token`: the token's lifetime in seconds (1–21600). IMDS echoes
    /// it on the answer.
    pub const TOKEN_TTL_SECONDS: &str = "X-aws-ec2-metadata-token-ttl-seconds";
    /// On every GET: the session token.
    pub const TOKEN: &str = "X-aws-ec2-metadata-token";
}

/// Default spot notice lead time: EC2 gives two minutes.
pub const SPOT_NOTICE_LEAD: Duration = Duration::from_secs(120);

/// `spot/instance-action`: EC2 will stop, hibernate or terminate this spot instance at
/// `time`, about two minutes after the notice appears.
/// Example: `{"action":"terminate","time":"2026-11-21T21:14:00Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotAction {
    /// `terminate`, `stop` or `hibernate`. Kept as a string: an action EC2 adds later must
    /// still read as "you are being interrupted", not as a parse error.
    pub action: String,
    pub time: DateTime<Utc>,
}

/// `events/recommendations/rebalance`: the instance is at elevated risk of interruption.
/// Example: `{"noticeTime":"2026-11-21T21:10:00Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebalance {
    #[serde(rename = "noticeTime")]
    pub notice_time: DateTime<Utc>,
}

/// The time format IMDS uses in scheduled events, e.g. `21 Jan 2019 09:00:43 GMT` (not
/// RFC 3339, unlike the spot and rebalance documents).
pub const SCHEDULED_EVENT_TIME_FORMAT: &str = "%d %b %Y %H:%M:%S GMT";

/// One entry of `events/maintenance/scheduled`, in IMDS's PascalCase names:
/// `{"NotBefore":"21 Jan 2019 09:00:43 GMT","Code":"system-reboot","Description":"scheduled
/// reboot","EventId":"instance-event-0d59937288b749b32","NotAfter":"21 Jan 2019 09:17:23
/// GMT","State":"active"}`.
///
/// The times stay strings as IMDS wrote them (see [`SCHEDULED_EVENT_TIME_FORMAT`]), so a
/// format change cannot make the whole list unreadable; [`ScheduledEvent::not_before_time`]
/// parses on demand. Missing fields read as empty rather than failing the list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScheduledEvent {
    pub not_before: String,
    /// `instance-reboot`, `system-reboot`, `system-maintenance`, `instance-retirement`,
    /// `instance-stop`.
    pub code: String,
    pub description: String,
    pub event_id: String,
    pub not_after: String,
    /// `active`, `completed` or `canceled`.
    pub state: String,
}

impl ScheduledEvent {
    /// When the event may start, if `NotBefore` is in IMDS's format.
    pub fn not_before_time(&self) -> Option<DateTime<Utc>> {
        parse_scheduled_time(&self.not_before)
    }

    /// When the event window ends, if `NotAfter` is in IMDS's format.
    pub fn not_after_time(&self) -> Option<DateTime<Utc>> {
        parse_scheduled_time(&self.not_after)
    }
}

/// Formats a time the way IMDS writes scheduled events.
pub fn format_scheduled_time(time: DateTime<Utc>) -> String {
    time.format(SCHEDULED_EVENT_TIME_FORMAT).to_string()
}

fn parse_scheduled_time(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text.trim(), SCHEDULED_EVENT_TIME_FORMAT)
        .ok()
        .map(|naive| naive.and_utc())
}

/// `now + after` in whole seconds, as times in IMDS documents are. Saturates instead of
/// panicking on an absurd `after` (a notice "in 10^18 seconds" is simply far away).
pub fn notice_time(now: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    let at = chrono::Duration::from_std(after)
        .ok()
        .and_then(|after| now.checked_add_signed(after))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_action_reads_and_writes_the_imds_shape() {
        let text = r#"{"action":"terminate","time":"2026-11-21T21:14:00Z"}"#;
        let action: SpotAction = serde_json::from_str(text).unwrap();
        assert_eq!(action.action, "terminate");
        assert_eq!(action.time.to_rfc3339(), "2026-11-21T21:14:00+00:00");
        assert_eq!(serde_json::to_string(&action).unwrap(), text);
    }

    #[test]
    fn rebalance_uses_notice_time() {
        let text = r#"{"noticeTime":"2026-11-21T21:10:00Z"}"#;
        let rebalance: Rebalance = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&rebalance).unwrap(), text);
    }

    #[test]
    fn scheduled_event_reads_the_documented_example() {
        let text = r#"[{"NotBefore" : "21 Jan 2019 09:00:43 GMT", "Code" : "system-reboot",
            "Description" : "scheduled reboot", "EventId" : "instance-event-0d59937288b749b32",
            "NotAfter" : "21 Jan 2019 09:17:23 GMT", "State" : "active"}]"#;
        let events: Vec<ScheduledEvent> = serde_json::from_str(text).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.code, "system-reboot");
        assert_eq!(event.event_id, "instance-event-0d59937288b749b32");
        let not_before = event.not_before_time().unwrap();
        assert_eq!(not_before.to_rfc3339(), "2019-01-21T09:00:43+00:00");
        assert_eq!(format_scheduled_time(not_before), event.not_before);
        assert!(event.not_after_time().unwrap() > not_before);
    }

    #[test]
    fn notice_times_have_whole_seconds_and_saturate() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T21:12:00.750Z")
            .unwrap()
            .to_utc();
        let at = notice_time(now, SPOT_NOTICE_LEAD);
        assert_eq!(at.to_rfc3339(), "2026-11-21T21:14:00+00:00");
        assert!(notice_time(now, Duration::MAX) > at);
    }
}
