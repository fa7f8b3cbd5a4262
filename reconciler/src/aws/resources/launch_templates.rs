//! One launch template per node type (`fleetform-<cluster>-<type>`). A change is a new
//! version made the default; instances record the version they came from in a tag.
//!
//! Security defaults live here: IMDSv2 required with a hop limit of 1 (the agent runs on
//! the host, so no container on the node can reach the role's credentials through a
//! second hop), an encrypted root volume, no public IP on the network interface.

use anyhow::Result;
use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest, LaunchTemplateInstanceMetadataEndpointState,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateInstanceNetworkInterfaceSpecificationRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType, ResponseLaunchTemplateData, Tag,
    TagSpecification, VolumeType,
};

use crate::aws::context::AwsContext;
use crate::aws::errors::aws_err;
use crate::aws::stages::state::{DesiredLaunchTemplate, LtFacts};
use crate::aws::names::{self, TAG_NODE_TYPE};

pub const HTTP_TOKENS: &str = "required";
pub const HOP_LIMIT: i32 = 1;

/// The hex SHA-256 that names user data, artifacts and fleet tokens: the runtime's, which
/// also names shipped python files.
pub use fleetform_runtime::jobs::sha256_hex;

pub struct FactsInput<'a> {
    pub image_id: &'a str,
    pub root_device: &'a str,
    pub user_data: &'a str,
    pub instance_profile: &'a str,
    pub security_group: Option<&'a str>,
    pub extra_security_groups: &'a [String],
    pub root_size_gb: u32,
    pub root_volume_type: &'a str,
}

pub fn desired_facts(i: FactsInput<'_>) -> LtFacts {
    LtFacts {
        image_id: i.image_id.into(),
        user_data_sha256: sha256_hex(i.user_data.as_bytes()),
        instance_profile: i.instance_profile.into(),
        security_group: i.security_group.map(str::to_string),
        extra_security_groups: i.extra_security_groups.to_vec(),
        root_device: i.root_device.into(),
        root_size_gb: i.root_size_gb as i32,
        root_volume_type: i.root_volume_type.into(),
        root_encrypted: true,
        http_tokens: HTTP_TOKENS.into(),
        http_hop_limit: HOP_LIMIT,
        associate_public_ip: false,
    }
}

/// Read back what fleetform writes; fields it cannot find read as empty, so the diff
/// names them.
pub fn facts_from_response(d: &ResponseLaunchTemplateData) -> LtFacts {
    let user_data = d
        .user_data()
        .and_then(|b| aws_smithy_types::base64::decode(b).ok())
        .map(|raw| sha256_hex(&raw))
        .unwrap_or_default();
    let nic = d.network_interfaces().first();
    let groups: Vec<String> = match nic.map(|n| n.groups()) {
        Some(g) if !g.is_empty() => g.to_vec(),
        _ => d.security_group_ids().to_vec(),
    };
    let root = d.block_device_mappings().first();
    let ebs = root.and_then(|r| r.ebs());
    LtFacts {
        image_id: d.image_id().unwrap_or_default().into(),
        user_data_sha256: user_data,
        instance_profile: d
            .iam_instance_profile()
            .and_then(|p| p.name().map(str::to_string).or_else(|| p.arn().and_then(|a| a.rsplit('/').next()).map(str::to_string)))
            .unwrap_or_default(),
        security_group: groups.first().cloned(),
        extra_security_groups: groups.iter().skip(1).cloned().collect(),
        root_device: root.and_then(|r| r.device_name()).unwrap_or_default().into(),
        root_size_gb: ebs.and_then(|e| e.volume_size()).unwrap_or(0),
        root_volume_type: ebs.and_then(|e| e.volume_type()).map(|v| v.as_str().to_string()).unwrap_or_default(),
        root_encrypted: ebs.and_then(|e| e.encrypted()).unwrap_or(false),
        http_tokens: d.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str().to_string()).unwrap_or_default(),
        http_hop_limit: d.metadata_options().and_then(|m| m.http_put_response_hop_limit()).unwrap_or(0),
        associate_public_ip: nic.and_then(|n| n.associate_public_ip_address()).unwrap_or(true),
    }
}

pub async fn default_version_facts(ctx: &AwsContext, id: &str) -> Result<Option<LtFacts>> {
    let got = ctx
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(id)
        .versions("$Default")
        .send()
        .await
        .map_err(aws_err("ec2:DescribeLaunchTemplateVersions"))?;
    Ok(got.launch_template_versions().first().and_then(|v| v.launch_template_data()).map(facts_from_response))
}

fn tags(ctx: &AwsContext, node_type: &str) -> Vec<Tag> {
    let mut t = names::cluster_tags(&ctx.spec);
    t.insert(TAG_NODE_TYPE.into(), node_type.into());
    t.into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn data(ctx: &AwsContext, d: &DesiredLaunchTemplate) -> RequestLaunchTemplateData {
    let f = &d.facts;
    let node_tags = tags(ctx, &d.node_type);
    RequestLaunchTemplateData::builder()
        .image_id(&f.image_id)
        .user_data(aws_smithy_types::base64::encode(d.user_data.as_bytes()))
        .iam_instance_profile(LaunchTemplateIamInstanceProfileSpecificationRequest::builder().name(&f.instance_profile).build())
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::from(HTTP_TOKENS))
                .http_put_response_hop_limit(HOP_LIMIT)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .build(),
        )
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(&f.root_device)
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_size(f.root_size_gb)
                        .volume_type(VolumeType::from(f.root_volume_type.as_str()))
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        // Security groups go on the interface (an interface and SecurityGroupIds cannot
        // both be given); subnets come from the launch request, one per offering.
        .network_interfaces(
            LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                .device_index(0)
                .associate_public_ip_address(false)
                .delete_on_termination(true)
                .set_groups(f.security_group.clone().map(|g| std::iter::once(g).chain(f.extra_security_groups.iter().cloned()).collect()))
                .build(),
        )
        .tag_specifications(
            LaunchTemplateTagSpecificationRequest::builder().resource_type(ResourceType::Volume).set_tags(Some(node_tags.clone())).build(),
        )
        .tag_specifications(
            LaunchTemplateTagSpecificationRequest::builder().resource_type(ResourceType::NetworkInterface).set_tags(Some(node_tags)).build(),
        )
        .build()
}

pub async fn create(ctx: &AwsContext, d: &DesiredLaunchTemplate) -> Result<()> {
    let res = ctx
        .ec2
        .create_launch_template()
        .launch_template_name(&d.name)
        .version_description(format!("fleetform {}", d.node_type))
        .launch_template_data(data(ctx, d))
        .tag_specifications(
            TagSpecification::builder().resource_type(ResourceType::LaunchTemplate).set_tags(Some(tags(ctx, &d.node_type))).build(),
        )
        .send()
        .await;
    match res {
        Ok(_) => Ok(()),
        // A concurrent or killed apply created it already: make ours the new version.
        Err(e) if aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&e)
            == Some("InvalidLaunchTemplateName.AlreadyExistsException") =>
        {
            let id = current(ctx, &d.node_type).await?.0;
            update(ctx, &id, d).await
        }
        Err(e) => Err(aws_err("ec2:CreateLaunchTemplate")(e)),
    }
}

pub async fn update(ctx: &AwsContext, id: &str, d: &DesiredLaunchTemplate) -> Result<()> {
    let v = ctx
        .ec2
        .create_launch_template_version()
        .launch_template_id(id)
        .version_description(format!("fleetform {}", d.node_type))
        .launch_template_data(data(ctx, d))
        .send()
        .await
        .map_err(aws_err("ec2:CreateLaunchTemplateVersion"))?;
    let number = v.launch_template_version().and_then(|v| v.version_number()).unwrap_or(1);
    ctx.ec2
        .modify_launch_template()
        .launch_template_id(id)
        .default_version(number.to_string())
        .send()
        .await
        .map_err(aws_err("ec2:ModifyLaunchTemplate"))?;
    Ok(())
}

pub async fn delete(ctx: &AwsContext, id: &str) -> Result<()> {
    match ctx.ec2.delete_launch_template().launch_template_id(id).send().await {
        Ok(_) => Ok(()),
        Err(e) if aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&e)
            .is_some_and(|c| c.starts_with("InvalidLaunchTemplateId")) =>
        {
            Ok(())
        }
        Err(e) => Err(aws_err("ec2:DeleteLaunchTemplate")(e)),
    }
}

/// The launch template of a node type: (id, default version).
pub async fn current(ctx: &AwsContext, node_type: &str) -> Result<(String, i64)> {
    let name = names::launch_template(ctx.cluster(), node_type);
    let got = ctx
        .ec2
        .describe_launch_templates()
        .launch_template_names(&name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("launch template {name} of node type `{node_type}` not found: run `fleetform apply` first ({})", crate::aws::errors::classify("ec2:DescribeLaunchTemplates", e)))?;
    let lt = got
        .launch_templates()
        .first()
        .ok_or_else(|| anyhow::anyhow!("launch template {name} of node type `{node_type}` not found: run `fleetform apply` first"))?;
    Ok((lt.launch_template_id().unwrap_or_default().to_string(), lt.default_version_number().unwrap_or(1)))
}
