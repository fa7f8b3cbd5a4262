//! `setup.sh`: the spec's `setup_commands` as a script the user data runs once at first
//! boot, before the node's fleetform unit starts (`reconciler/templates/user-data.yaml.j2`).
//!
//! The script records the first failure in [`SETUP_FAILED_FILE`] instead of stopping the
//! boot: a node that never started its agent would send no heartbeat, be terminated by
//! the autoscaler and relaunched with the same failing command, over and over. A node
//! that records the failure and starts anyway reports it, and `fleetform status` shows it.

/// Where the script installs itself on the node.
pub const SETUP_SCRIPT_PATH: &str = "/usr/local/lib/fleetform/setup.sh";
/// The first failed command and its exit code; absent when every command succeeded.
/// In the agent unit's StateDirectory, so the agent may read it.
pub const SETUP_FAILED_FILE: &str = "/var/lib/fleetform/setup-failed";
pub use fleetform_core::layout::SETUP_LOG;

/// The script, or None when there is nothing to run (the user data then stays as it was,
/// so clusters without setup_commands see no launch template change).
pub fn render(commands: &[String]) -> Option<String> {
    if commands.is_empty() {
        return None;
    }
    let n = commands.len();
    let mut s = format!(
        "#!/bin/bash\n\
         # setup_commands of the cluster spec, run once by install.sh before the fleetform unit\n\
         # starts. Each runs in its own `bash -c`, as root, in order; the first that fails stops\n\
         # the rest and is recorded in {SETUP_FAILED_FILE} (the agent reports it).\n\
         set -uo pipefail\n\
         export HOME=${{HOME:-/root}}\n\
         mkdir -p \"$(dirname {SETUP_FAILED_FILE})\"\n\
         rm -f {SETUP_FAILED_FILE}\n\
         run() {{\n\
         \x20 echo \"fleetform setup ($1/{n}): $2\"\n\
         \x20 bash -c \"$2\"\n\
         \x20 local rc=$?\n\
         \x20 if [ \"$rc\" -ne 0 ]; then\n\
         \x20   printf 'exit %s: %s\\n' \"$rc\" \"$2\" > {SETUP_FAILED_FILE}\n\
         \x20   echo \"fleetform setup: exit $rc from command $1; the remaining commands were not run\"\n\
         \x20   exit \"$rc\"\n\
         \x20 fi\n\
         }}\n\
         commands() {{\n",
    );
    for (i, cmd) in commands.iter().enumerate() {
        s.push_str(&format!("  run {} {}\n", i + 1, shell_quote(cmd)));
    }
    // A pipeline, not `exec > >(tee ...)`: bash waits for tee, so the log is complete
    // when the script returns; the status is the commands', not tee's.
    s.push_str(&format!(
        "  echo \"fleetform setup: all {n} commands succeeded\"\n\
         }}\n\
         commands 2>&1 | tee -a {SETUP_LOG} /dev/console >/dev/null\n\
         exit \"${{PIPESTATUS[0]}}\"\n"
    ));
    Some(s)
}

/// One shell word that is exactly `s`: single quotes, each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn nothing_to_run_renders_nothing() {
        assert_eq!(render(&[]), None);
    }

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["pip install -U \"ray[default,data]\" pandas", "echo 'it''s' $HOME `x` \\n", "a\nb"] {
            let out = Command::new("bash").arg("-c").arg(format!("printf %s {}", shell_quote(s))).output().unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    /// Runs the rendered script with its paths moved into a temporary directory: the
    /// commands run in order, the first failure stops the rest and is recorded.
    #[test]
    fn first_failure_is_recorded_and_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let cmds: Vec<String> =
            vec![format!("echo one >> {d}/order"), "sh -c 'exit 3' # it's the failing one".into(), format!("echo three >> {d}/order")];
        let script = render(&cmds)
            .unwrap()
            .replace(SETUP_FAILED_FILE, &format!("{d}/setup-failed"))
            .replace(SETUP_LOG, &format!("{d}/setup.log"))
            .replace("/dev/console", "/dev/null");
        let status = Command::new("bash").arg("-c").arg(&script).status().unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(std::fs::read_to_string(format!("{d}/order")).unwrap(), "one\n");
        assert_eq!(
            std::fs::read_to_string(format!("{d}/setup-failed")).unwrap(),
            "exit 3: sh -c 'exit 3' # it's the failing one\n"
        );
        let log = std::fs::read_to_string(format!("{d}/setup.log")).unwrap();
        assert!(log.contains("fleetform setup (2/3): sh -c 'exit 3'"), "{log}");
        assert!(log.contains("exit 3 from command 2; the remaining commands were not run"), "{log}");
    }
}
