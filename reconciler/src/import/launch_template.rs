//! `LaunchTemplate` in a node_config. EC2 launches with the template's fields, and
//! node_config's own fields override them (Ray passes both to RunInstances). Import
//! works offline, so by default it imports node_config's fields and says which of the
//! template's it could not see; with `--resolve-launch-templates` it asks EC2
//! (DescribeLaunchTemplateVersions) and takes the template's instance type, AMI, market
//! and root volume where node_config leaves them out.

use std::collections::BTreeMap;

use anyhow::Result;

use super::ray::{BlockDevice, Ebs, LaunchTemplate, MarketOptions, RayNodeConfig};
use super::sources::TypeSource;
use super::Note;

/// The fields of one template version that import maps, and the names of the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateData {
    pub instance_type: Option<String>,
    pub image_id: Option<String>,
    pub market_type: Option<String>,
    pub root: Option<(String, Option<u32>, Option<String>)>,
    /// Set fields fleetform does not map (`UserData`, `IamInstanceProfile`, ...).
    pub unmapped: Vec<String>,
}

/// Resolved templates, by [`LaunchTemplate::describe`].
pub type Templates = BTreeMap<String, TemplateData>;

/// Fill what node_config leaves out from its resolved template, or say what was not seen.
/// Returns the error when the node type has no instance type at all.
pub fn apply(ts: &mut TypeSource, templates: &Templates, notes: &mut Vec<Note>) -> Result<(), Note> {
    let Some(lt) = ts.t.node_config.launch_template.clone() else { return Ok(()) };
    let at = ts.config_at.key("LaunchTemplate");
    let cfg = &mut ts.t.node_config;
    let Some(data) = templates.get(&lt.describe()) else {
        if cfg.instance_type.is_none() {
            return Err(Note {
                path: at,
                message: format!(
                    "no InstanceType in node_config, and launch template {} was not read: import with \
                     --resolve-launch-templates (asks EC2 for it), or add InstanceType",
                    lt.describe()
                ),
            });
        }
        notes.push(Note { path: at, message: offline_message(&lt, cfg) });
        return Ok(());
    };
    let taken = fill(cfg, data);
    let mut message = format!("read {} (ec2:DescribeLaunchTemplateVersions)", lt.describe());
    if !taken.is_empty() {
        message.push_str(&format!(": took {} from it (node_config did not set them)", taken.join(", ")));
    }
    if !data.unmapped.is_empty() {
        message.push_str(&format!("; not imported from it: {} (fleetform writes its own user data, instance profile and network interface)", data.unmapped.join(", ")));
    }
    notes.push(Note { path: at, message });
    if cfg.instance_type.is_none() {
        return Err(Note {
            path: ts.config_at.key("LaunchTemplate"),
            message: format!("neither node_config nor launch template {} sets InstanceType: add it to node_config", lt.describe()),
        });
    }
    Ok(())
}

fn offline_message(lt: &LaunchTemplate, cfg: &RayNodeConfig) -> String {
    let left_out: Vec<&str> = [
        ("ImageId", cfg.image_id.is_none()),
        ("InstanceMarketOptions", cfg.market_options.is_none()),
        ("BlockDeviceMappings", cfg.block_devices.is_empty()),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(k, _)| k)
    .collect();
    let which = if left_out.is_empty() {
        String::new()
    } else {
        format!(" (for {}, which node_config leaves to it, fleetform's defaults were written)", left_out.join(", "))
    };
    format!(
        "launch template {} not read: only node_config's own fields were imported{which}; the template's user data, \
         instance profile, network interfaces and tags are never imported. To take its instance type, AMI, market and \
         root volume, import with --resolve-launch-templates (asks EC2)",
        lt.describe()
    )
}

/// node_config's missing fields from the template; the names of those taken.
fn fill(cfg: &mut RayNodeConfig, data: &TemplateData) -> Vec<&'static str> {
    let mut taken = Vec::new();
    if cfg.instance_type.is_none() && data.instance_type.is_some() {
        cfg.instance_type = data.instance_type.clone();
        taken.push("InstanceType");
    }
    if cfg.image_id.is_none() && data.image_id.is_some() {
        cfg.image_id = data.image_id.clone();
        taken.push("ImageId");
    }
    if cfg.market_options.is_none() && data.market_type.is_some() {
        cfg.market_options = Some(MarketOptions { market_type: data.market_type.clone() });
        taken.push("InstanceMarketOptions.MarketType");
    }
    if cfg.block_devices.is_empty() {
        if let Some((device, size, kind)) = &data.root {
            cfg.block_devices.push(BlockDevice {
                device_name: Some(device.clone()),
                ebs: Some(Ebs { volume_size: *size, volume_type: kind.clone() }),
            });
            taken.push("BlockDeviceMappings");
        }
    }
    taken
}

/// Every launch template the node types name (by [`LaunchTemplate::describe`]).
pub fn named(types: &[&RayNodeConfig]) -> BTreeMap<String, LaunchTemplate> {
    types.iter().filter_map(|c| c.launch_template.clone()).map(|lt| (lt.describe(), lt)).collect()
}

#[cfg(not(feature = "aws"))]
pub async fn resolve(_region: Option<&str>, _named: &BTreeMap<String, LaunchTemplate>) -> Result<Templates> {
    Err(fleetform_runtime::without_aws("`fleetform import ray --resolve-launch-templates` (it asks EC2)"))
}

/// Ask EC2 for each template version (one DescribeLaunchTemplateVersions call each).
#[cfg(feature = "aws")]
pub async fn resolve(region: Option<&str>, named: &BTreeMap<String, LaunchTemplate>) -> Result<Templates> {
    use crate::aws::context::sdk_config_in;
    use crate::aws::errors::aws_err;
    use anyhow::Context as _;
    let mut out = Templates::new();
    if named.is_empty() {
        return Ok(out);
    }
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config_in(region).await);
    for (key, lt) in named {
        let got = ec2
            .describe_launch_template_versions()
            .set_launch_template_id(lt.id.clone())
            .set_launch_template_name(if lt.id.is_some() { None } else { lt.name.clone() })
            .versions(lt.version_string().unwrap_or_else(|| "$Default".into()))
            .send()
            .await
            .map_err(aws_err("ec2:DescribeLaunchTemplateVersions"))
            .with_context(|| format!("launch template {key}"))?;
        let data = got
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .with_context(|| format!("launch template {key}: EC2 returned no version"))?;
        out.insert(key.clone(), template_data(data));
    }
    Ok(out)
}

#[cfg(feature = "aws")]
fn template_data(d: &aws_sdk_ec2::types::ResponseLaunchTemplateData) -> TemplateData {
    let root = d.block_device_mappings().iter().find_map(|m| {
        let device = m.device_name()?;
        super::ray::ROOT_DEVICES.contains(&device).then(|| {
            let ebs = m.ebs();
            (
                device.to_string(),
                ebs.and_then(|e| e.volume_size()).and_then(|s| u32::try_from(s).ok()),
                ebs.and_then(|e| e.volume_type()).map(|t| t.as_str().to_string()),
            )
        })
    });
    let unmapped = [
        ("UserData", d.user_data().is_some()),
        ("IamInstanceProfile", d.iam_instance_profile().is_some()),
        ("NetworkInterfaces", !d.network_interfaces().is_empty()),
        ("SecurityGroupIds", !d.security_group_ids().is_empty()),
        ("KeyName", d.key_name().is_some()),
        ("TagSpecifications", !d.tag_specifications().is_empty()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k.to_string())
    .collect();
    TemplateData {
        instance_type: d.instance_type().map(|t| t.as_str().to_string()),
        image_id: d.image_id().map(str::to_string),
        market_type: d.instance_market_options().and_then(|m| m.market_type()).map(|m| m.as_str().to_string()),
        root,
        unmapped,
    }
}
