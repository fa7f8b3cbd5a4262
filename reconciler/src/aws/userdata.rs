//! User data (cloud-init) of each node type, rendered from
//! `reconciler/templates/user-data.yaml.j2`. Workers install and enable the agent; the
//! head installs `fleetform` and enables the reconcile (autoscaler) unit instead.

use anyhow::Result;
use fleetform_core::instance::facts;
use fleetform_core::{layout, ClusterSpec};
use minijinja::context;

use super::names;
use super::render::render;

const AGENT_UNIT: &str = include_str!("../../../node-agent/packaging/fleetform-agent.service");
const RECONCILE_UNIT: &str = include_str!("../../../node-agent/packaging/fleetform-reconcile.service");

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
    let resources = spec.available_node_types.get(node_type).map(|t| t.resources.clone()).unwrap_or_default();
    let (unit_name, unit_file, binary) = if is_head {
        ("fleetform-reconcile.service", RECONCILE_UNIT, "fleetform")
    } else {
        ("fleetform-agent.service", AGENT_UNIT, "fleetform-agent")
    };
    render(
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
            local_nvme => uses_local_nvme(spec, node_type),
            unit_name => unit_name,
            unit_file => unit_file,
            binary => binary,
            package => binary,
            source_bundle_key => layout::source_bundle(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSHOP: &str = include_str!("../../../cluster.yaml");

    #[test]
    fn worker_and_head_user_data() {
        let mut spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
        let w = render_user_data(&spec, "x86_worker_node", "us-west-2").unwrap();
        assert!(w.starts_with("#cloud-config\n"), "{w}");
        let doc: serde_json::Value = serde_norway::from_str(&w).unwrap();
        let files: Vec<&str> = doc["write_files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(files, ["/etc/fleetform/agent.env.in", "/etc/systemd/system/fleetform-agent.service", "/usr/local/lib/fleetform/install.sh"]);
        let env = doc["write_files"][0]["content"].as_str().unwrap();
        assert_eq!(
            env,
            "AWS_REGION=us-west-2\nFLEETFORM_NODE_TYPE=x86_worker_node\nFLEETFORM_STORE=s3://fleetform-workshop-data/workshop\n\
             FLEETFORM_QUEUE=sqs://workshop\nFLEETFORM_RESOURCES={\"CPU\":8.0,\"Intel\":1.0}\n\
             FLEETFORM_SPEC_URL=s3://fleetform-workshop-data/workshop/cluster.yaml\n"
        );
        assert!(doc["write_files"][1]["content"].as_str().unwrap().contains("ExecStart=/usr/local/bin/fleetform-agent\n"));
        let script = doc["write_files"][2]["content"].as_str().unwrap();
        assert!(script.contains("install_binary fleetform-agent fleetform-agent\n"), "{script}");
        assert!(script.contains("systemctl enable --now fleetform-agent.service"));
        assert!(script.contains("FLEETFORM_NODE_ID=$INSTANCE_ID"));
        assert!(!script.contains("NVMe Instance Storage"), "r7i has no instance store");

        let h = render_user_data(&spec, "head", "us-west-2").unwrap();
        assert!(h.contains("systemctl enable --now fleetform-reconcile.service"));
        assert!(h.contains("ExecStart=/usr/local/bin/fleetform reconcile --watch -f /etc/fleetform/cluster.yaml"));
        assert!(!h.contains("fleetform-agent.service"));

        spec.available_node_types.get_mut("arm_worker_node").unwrap().node_config.instance_types = vec!["c7gd.4xlarge".into()];
        let a = render_user_data(&spec, "arm_worker_node", "us-west-2").unwrap();
        assert!(a.contains("NVMe Instance Storage") && a.contains("SPILL=/mnt/fleetform-nvme/spill"), "{a}");
        assert!(a.len() < 16 * 1024, "EC2 limits user data to 16 KB");
    }
}
