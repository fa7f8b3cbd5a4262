//! User data (cloud-init) of each node type, rendered from
//! `reconciler/templates/user-data.yaml.j2`. Workers install and enable the agent; the
//! head installs `fleetform` and enables the reconcile (autoscaler) unit instead.

use anyhow::Result;
use fleetform_core::instance::facts;
use fleetform_core::{layout, ClusterSpec};
use minijinja::context;

use crate::aws::names;
use crate::aws::resources::stack_templates::render;
use crate::aws::resources::setup_script::{self, SETUP_FAILED_FILE, SETUP_LOG, SETUP_SCRIPT_PATH};

/// EC2 rejects larger user data (RunInstances `UserData`, before base64).
pub const USER_DATA_LIMIT: usize = 16 * 1024;

const AGENT_UNIT: &str = include_str!("../../../../node-agent/packaging/fleetform-agent.service");
const RECONCILE_UNIT: &str = include_str!("../../../packaging/fleetform-reconcile.service");
/// Download, or build once per architecture, the node's binary (tested alone by
/// tests/e2e/install_binary.rs).
pub const INSTALL_BINARY_SCRIPT: &str = include_str!("../../../../node-agent/packaging/install-binary.sh");

/// The instance-store NVMe spill mount, at every boot: a cloud-init runcmd runs once per
/// instance, and the mount it made is gone after a reboot.
pub const SPILL_SCRIPT: &str = include_str!("../../../../node-agent/packaging/spill-nvme.sh");
const SPILL_UNIT: &str = include_str!("../../../../node-agent/packaging/fleetform-spill.service");

/// A shell script without its comment lines (the shebang stays) and blank lines: what
/// the user data carries, within EC2's 16 KB. The commented file is in the repository.
pub fn without_comments(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    for (i, line) in script.lines().enumerate() {
        let code = line.trim_start();
        if (i == 0 && code.starts_with("#!")) || !(code.is_empty() || code.starts_with('#')) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `s3://bucket/prefix` (no trailing slash), what FLEETFORM_STORE expects.
pub fn store_url(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{}", prefix.trim_end_matches('/')).trim_end_matches('/').to_string()
}

/// Does any instance type of the node type have local NVMe, and does the spec want it?
pub fn uses_local_nvme(spec: &ClusterSpec, node_type: &str) -> bool {
    spec.available_node_types.get(node_type).is_some_and(|t| {
        t.node_config.local_nvme && t.node_config.instance_types.iter().any(|i| facts(i).is_some_and(|f| f.local_nvme))
    })
}

pub fn render_user_data(spec: &ClusterSpec, node_type: &str, region: &str) -> Result<String> {
    let is_head = node_type == spec.head_node_type;
    let bucket = spec.storage.bucket.clone().unwrap_or_default();
    let prefix = names::store_prefix(spec);
    // The agent lends exactly what the autoscaler packs onto the node (memory included).
    let resources = spec.node_offer(node_type);
    let (unit_name, unit_file, binary) = if is_head {
        ("fleetform-reconcile.service", RECONCILE_UNIT, "fleetform")
    } else {
        ("fleetform-agent.service", AGENT_UNIT, "fleetform-agent")
    };
    let text = render(
        "user-data.yaml.j2",
        context! {
            cluster => spec.cluster_name,
            node_type => node_type,
            role => if is_head { "head" } else { "worker" },
            region => region,
            bucket => bucket,
            prefix => prefix,
            store_url => store_url(&bucket, &prefix),
            queue_url => format!("sqs://{}", spec.cluster_name),
            resources_json => serde_json::to_string(&resources)?,
            spec_url => format!("s3://{bucket}/{prefix}{}", names::SPEC_KEY),
            // Workers only: the head runs no agent, so it has nothing to spill.
            local_nvme => !is_head && uses_local_nvme(spec, node_type),
            spill_script => without_comments(SPILL_SCRIPT),
            spill_unit => without_comments(SPILL_UNIT),
            unit_name => unit_name,
            unit_file => unit_file,
            binary => binary,
            package => binary,
            source_bundle_key => layout::source_bundle(),
            install_binary_script => without_comments(INSTALL_BINARY_SCRIPT),
            setup_script => setup_script::render(&spec.setup_commands),
            setup_script_path => SETUP_SCRIPT_PATH,
            setup_failed_file => SETUP_FAILED_FILE,
            setup_log => SETUP_LOG,
            // The agent's own /metrics on every interface: the worker security group
            // admits the port from the head only (stacks/network*.yaml.j2).
            metrics_listen => spec.agent_metrics_port.filter(|_| !is_head).map(|p| format!("0.0.0.0:{p}")),
        },
    )?;
    if text.len() > USER_DATA_LIMIT {
        anyhow::bail!(
            "the user data of node type `{node_type}` is {} bytes and EC2 accepts {USER_DATA_LIMIT}: shorten `setup_commands` \
             (e.g. one command that downloads and runs a script from the bucket)",
            text.len()
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSHOP: &str = include_str!("../../../../cluster.yaml");

    #[test]
    fn worker_and_head_user_data() {
        let mut spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
        let w = render_user_data(&spec, "x86_worker_node", "us-west-2").unwrap();
        assert!(w.starts_with("#cloud-config\n"), "{w}");
        let doc: serde_json::Value = serde_norway::from_str(&w).unwrap();
        let files: Vec<&str> = doc["write_files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(
            files,
            [
                "/etc/fleetform/agent.env.in",
                "/etc/systemd/system/fleetform-agent.service",
                "/usr/local/lib/fleetform/install-binary.sh",
                "/usr/local/lib/fleetform/install.sh"
            ]
        );
        let env = doc["write_files"][0]["content"].as_str().unwrap();
        assert_eq!(
            env,
            "AWS_REGION=us-west-2\nFLEETFORM_NODE_TYPE=x86_worker_node\nFLEETFORM_STORE=s3://fleetform-workshop-data/workshop\n\
             FLEETFORM_QUEUE=sqs://workshop\nFLEETFORM_RESOURCES={\"CPU\":8.0,\"Intel\":1.0,\"memory\":64.0}\n\
             FLEETFORM_SPEC_URL=s3://fleetform-workshop-data/workshop/cluster.yaml\n"
        );
        assert!(doc["write_files"][1]["content"].as_str().unwrap().contains("ExecStart=/usr/local/bin/fleetform-agent\n"));
        assert_eq!(doc["write_files"][2]["content"].as_str().unwrap(), without_comments(INSTALL_BINARY_SCRIPT));
        let script = doc["write_files"][3]["content"].as_str().unwrap();
        // No trailing slash on the store: "$STORE/bin/..." must not hold a double slash.
        assert!(script.contains("STORE=\"s3://fleetform-workshop-data/workshop\"\n"), "{script}");
        assert!(
            script.contains(
                "SOURCE_BUNDLE=bin/src/fleetform-src.tar.gz NODE_ID=\"$INSTANCE_ID\" \\\n  \
                 /usr/local/lib/fleetform/install-binary.sh fleetform-agent fleetform-agent /usr/local/bin/fleetform-agent\n"
            ),
            "{script}"
        );
        assert!(script.contains("systemctl enable --now fleetform-agent.service"));
        assert!(script.contains("export AWS_REGION=us-west-2 AWS_DEFAULT_REGION=us-west-2\n"), "{script}");
        assert!(script.contains("FLEETFORM_NODE_ID=$INSTANCE_ID"));
        assert!(!script.contains("NVMe Instance Storage"), "r7i has no instance store");

        spec.agent_metrics_port = Some(9101);
        let with_metrics = render_user_data(&spec, "x86_worker_node", "us-west-2").unwrap();
        assert!(with_metrics.contains("      FLEETFORM_METRICS_LISTEN=0.0.0.0:9101\n"), "{with_metrics}");
        assert!(!render_user_data(&spec, "head", "us-west-2").unwrap().contains("FLEETFORM_METRICS_LISTEN"), "the head runs no agent");
        spec.agent_metrics_port = None;

        let h = render_user_data(&spec, "head", "us-west-2").unwrap();
        assert!(h.contains("systemctl enable --now fleetform-reconcile.service"));
        assert!(h.contains("ExecStart=/usr/local/bin/fleetform reconcile --watch -f /var/lib/fleetform-reconcile/cluster.yaml"));
        assert!(!h.contains("fleetform-agent.service"));
        assert!(h.contains("install-binary.sh fleetform fleetform /usr/local/bin/fleetform\n"), "{h}");

        spec.available_node_types.get_mut("arm_worker_node").unwrap().node_config.instance_types = vec!["c7gd.4xlarge".into()];
        let a = render_user_data(&spec, "arm_worker_node", "us-west-2").unwrap();
        assert!(a.contains("NVMe Instance Storage") && a.contains("SPILL=$(/usr/local/lib/fleetform/spill-nvme.sh)"), "{a}");
        // The mount comes back at every boot, before the agent (a runcmd's mount is gone
        // after a reboot).
        assert!(a.contains("systemctl enable fleetform-spill.service") && a.contains("RequiredBy=fleetform-agent.service"), "{a}");
        assert!(!w.contains("spill-nvme.sh"), "no NVMe, no spill unit: {w}");
        assert!(a.len() < 16 * 1024, "EC2 limits user data to 16 KB");
        for (name, text) in [("worker", &w), ("head", &h), ("arm worker with NVMe", &a)] {
            println!("user data of the {name}: {} bytes", text.len());
        }
    }

    #[test]
    fn setup_commands_run_before_the_unit_and_change_the_launch_template() {
        use crate::aws::resources::launch_templates::{desired_facts, FactsInput};
        let facts = |ud: &str| {
            desired_facts(FactsInput {
                image_id: "ami-1",
                root_device: "/dev/xvda",
                user_data: ud,
                instance_profile: "p",
                security_group: None,
                extra_security_groups: &[],
                root_size_gb: 100,
                root_volume_type: "gp3",
            })
        };
        let mut spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
        let before = render_user_data(&spec, "x86_worker_node", "us-west-2").unwrap();
        assert!(!before.contains("setup"), "no setup_commands, no setup step: {before}");
        spec.setup_commands = vec!["pip install pandas pyarrow".into(), "echo 'done'".into()];
        let after = render_user_data(&spec, "x86_worker_node", "us-west-2").unwrap();
        assert_eq!(facts(&before).differences(&facts(&after)), ["user data changed"]);

        let doc: serde_json::Value = serde_norway::from_str(&after).unwrap();
        let files: Vec<&str> = doc["write_files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(files[2], SETUP_SCRIPT_PATH, "{files:?}");
        assert_eq!(doc["write_files"][2]["content"].as_str().unwrap(), setup_script::render(&spec.setup_commands).unwrap());
        assert!(doc["write_files"][0]["content"].as_str().unwrap().ends_with(&format!("FLEETFORM_SETUP_FAILED_FILE={SETUP_FAILED_FILE}\n")));
        assert_eq!(files[3], "/usr/local/lib/fleetform/install-binary.sh");
        let install = doc["write_files"][4]["content"].as_str().unwrap();
        let setup_at = install.find(&format!("{SETUP_SCRIPT_PATH} || echo")).expect("install.sh runs setup.sh");
        assert!(setup_at < install.find("systemctl enable --now fleetform-agent.service").unwrap(), "{install}");
        let head = render_user_data(&spec, "head", "us-west-2").unwrap();
        assert!(head.contains("run 1 'pip install pandas pyarrow'"), "the head runs them too: {head}");

        spec.setup_commands = vec!["x".repeat(USER_DATA_LIMIT)];
        let err = render_user_data(&spec, "x86_worker_node", "us-west-2").unwrap_err().to_string();
        assert!(err.contains("node type `x86_worker_node`") && err.contains("shorten `setup_commands`"), "{err}");
    }

    #[test]
    fn the_install_script_ships_without_comments_and_still_parses() {
        let shipped = without_comments(INSTALL_BINARY_SCRIPT);
        assert!(shipped.starts_with("#!/bin/bash\nset -euo pipefail\n"), "{shipped}");
        assert!(!shipped.lines().any(|l| l.trim_start().starts_with('#') && !l.starts_with("#!")), "{shipped}");
        assert!(shipped.contains("PREFIX=${STORE#\"s3://$BUCKET\"}"), "a `#` inside code stays: {shipped}");
        for script in [shipped, without_comments(SPILL_SCRIPT)] {
            let parse = std::process::Command::new("bash").args(["-n", "-c", &script]).output().unwrap();
            assert!(parse.status.success(), "bash -n: {}", String::from_utf8_lossy(&parse.stderr));
        }
        assert_eq!(without_comments("#!/bin/sh\n# why\n\n  # indented why\necho a # b\n"), "#!/bin/sh\necho a # b\n");
    }

    /// The shipped units pass `systemd-analyze verify`, and the daemons score at most 2.5
    /// on `systemd-analyze security` (systemd's own hardened daemons' class). Executables
    /// are pointed at stand-ins, since verify checks that they exist.
    #[test]
    fn units_verify_and_are_hardened() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for name in ["fleetform", "fleetform-agent", "aws", "spill-nvme.sh"] {
            let exe = bin.join(name);
            std::fs::write(&exe, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        for (name, unit) in [("fleetform-agent.service", AGENT_UNIT), ("fleetform-reconcile.service", RECONCILE_UNIT), ("fleetform-spill.service", SPILL_UNIT)] {
            let text = unit
                .replace("/usr/local/bin/", &format!("{}/", bin.display()))
                .replace("/usr/local/lib/fleetform/", &format!("{}/", bin.display()))
                .replace("/usr/bin/aws", &format!("{}/aws", bin.display()));
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let verify = systemd_analyze(&["verify", path.to_str().unwrap()]);
            let complaints = String::from_utf8_lossy(&verify.stderr);
            assert!(verify.status.success() && complaints.trim().is_empty(), "{name}: {complaints}");
            if name == "fleetform-spill.service" {
                continue; // a root oneshot that formats and mounts devices: no daemon to harden
            }
            let security = systemd_analyze(&["security", "--offline=true", path.to_str().unwrap()]);
            let report = String::from_utf8_lossy(&security.stdout);
            let score: f64 = report
                .lines()
                .find_map(|l| l.split_once("Overall exposure level for ").and_then(|(_, r)| r.split(": ").nth(1)))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name}: no overall exposure level in:\n{report}"));
            assert!(score <= 2.5, "{name}: exposure {score} > 2.5:\n{report}");
        }
        let spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
        let install = render_user_data(&spec, "x86_worker_node", "us-west-2").unwrap();
        assert!(install.contains("useradd --system") && install.contains("chown fleetform:fleetform \"$SPILL\""), "{install}");
    }

    fn systemd_analyze(args: &[&str]) -> std::process::Output {
        std::process::Command::new("systemd-analyze").args(args).output().unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}): install systemd (`apt-get install systemd`); .ci/run does")
        })
    }
}
