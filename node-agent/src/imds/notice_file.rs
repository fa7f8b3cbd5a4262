//! The local provider's notice file: what IMDS would say about a local node's future.
//!
//! A local machine has no IMDS, so the supervisor gives each agent
//! `--notice-file <node dir>/notice.json` and `fleetform chaos interrupt` writes a spot
//! notice there. The watcher polls it exactly as it polls IMDS, so the drain that follows
//! is the one an EC2 spot notice starts. Each key is the IMDS path under
//! `/latest/meta-data/` and its value the document IMDS serves there:
//!
//! ```json
//! {"spot/instance-action": {"action": "terminate", "time": "2026-11-21T21:14:00Z"},
//!  "events/recommendations/rebalance": {"noticeTime": "2026-11-21T21:10:00Z"},
//!  "events/maintenance/scheduled": [{"NotBefore": "21 Nov 2026 22:00:00 GMT", "Code": "system-reboot", "State": "active"}]}
//! ```
//!
//! A missing file or key means "no notice", as IMDS's 404 does. Writers replace the file
//! with a rename ([`update`]), so the agent never reads half of one.
use super::{Rebalance, ScheduledEvent, SpotAction};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// The file's name in a local node's directory.
pub const FILE_NAME: &str = "notice.json";

/// Every notice a node has been given; an empty object when there are none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Notices {
    #[serde(
        rename = "spot/instance-action",
        skip_serializing_if = "Option::is_none"
    )]
    pub spot: Option<SpotAction>,
    #[serde(
        rename = "events/recommendations/rebalance",
        skip_serializing_if = "Option::is_none"
    )]
    pub rebalance: Option<Rebalance>,
    #[serde(
        rename = "events/maintenance/scheduled",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scheduled: Vec<ScheduledEvent>,
}

/// A notice file that cannot be read or written; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum NoticeFileError {
    #[error("cannot read the notice file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the notice file {path} is not a JSON object of IMDS documents (keys \
         \"spot/instance-action\", \"events/recommendations/rebalance\", \
         \"events/maintenance/scheduled\"): {source}"
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the notice file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The notices in `path`; none when the file does not exist.
pub async fn read(path: &Path) -> Result<Notices, NoticeFileError> {
    parse(path, tokio::fs::read(path).await)
}

/// [`read`] for callers without a runtime (the CLI).
pub fn read_blocking(path: &Path) -> Result<Notices, NoticeFileError> {
    parse(path, std::fs::read(path))
}

fn parse(path: &Path, bytes: io::Result<Vec<u8>>) -> Result<Notices, NoticeFileError> {
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Notices::default()),
        Err(source) => {
            return Err(NoticeFileError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|source| NoticeFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Changes the notices in `path` and writes them back (to a temporary file in the same
/// directory, then renamed over it). Notices accumulate, as on IMDS: a rebalance
/// recommendation stays when a spot notice follows. Returns what was written.
///
/// Two writers at once may lose one's change; the writers are `fleetform chaos` and tests,
/// one at a time.
pub fn update(path: &Path, change: impl FnOnce(&mut Notices)) -> Result<Notices, NoticeFileError> {
    let mut notices = read_blocking(path)?;
    change(&mut notices);
    let write_error = |source| NoticeFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let json = serde_json::to_vec_pretty(&notices).expect("notices serialise");
    std::fs::write(&tmp, json).map_err(write_error)?;
    std::fs::rename(&tmp, path).map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        write_error(err)
    })?;
    Ok(notices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imds::{notice_time, SPOT_NOTICE_LEAD};
    use chrono::Utc;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fleetform-notice-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn no_file_means_no_notices() {
        let dir = dir();
        assert_eq!(
            read(&dir.join(FILE_NAME)).await.unwrap(),
            Notices::default()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn notices_accumulate_in_the_imds_shapes() {
        let dir = dir();
        let path = dir.join(FILE_NAME);
        let now = Utc::now();
        update(&path, |n| {
            n.rebalance = Some(Rebalance {
                notice_time: notice_time(now, std::time::Duration::ZERO),
            })
        })
        .unwrap();
        let spot = SpotAction {
            action: "terminate".into(),
            time: notice_time(now, SPOT_NOTICE_LEAD),
        };
        let written = update(&path, |n| n.spot = Some(spot.clone())).unwrap();
        assert!(written.rebalance.is_some(), "the rebalance stays");
        assert_eq!(read(&path).await.unwrap(), written);

        // The documents are IMDS's, under the IMDS paths' names.
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let document = &json["spot/instance-action"];
        assert_eq!(
            serde_json::from_value::<SpotAction>(document.clone()).unwrap(),
            spot
        );
        assert!(
            json["events/recommendations/rebalance"]["noticeTime"].is_string(),
            "{json}"
        );
        assert!(json.get("events/maintenance/scheduled").is_none(), "{json}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, [FILE_NAME], "no temporary file is left behind");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_bad_file_names_itself_and_the_expected_keys() {
        let dir = dir();
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, r#"{"spot": {"action": "terminate"}}"#).unwrap();
        let err = read(&path).await.unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("unknown field `spot`") && err.contains("spot/instance-action"),
            "{err}"
        );
        assert!(
            update(&path, |_| {}).is_err(),
            "an unreadable file is not overwritten"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
