//! `--resolve-vpc`: a Ray file names subnets but never their VPC; with AWS access, ask
//! EC2 which VPC they are in, so the user need not look it up for `--vpc-id`.

use anyhow::Result;

use super::model::Imported;

/// The one VPC of the Ray file's subnets. None when the file names no subnet.
#[cfg(feature = "aws")]
pub async fn of_subnets(imported: &Imported) -> Result<Option<String>> {
    use crate::aws::context::sdk_config_in;
    use crate::aws::errors::aws_err;
    use anyhow::bail;
    use std::collections::BTreeSet;

    let Some(net) = imported.byo_network.as_ref().filter(|n| !n.subnet_ids.is_empty()) else { return Ok(None) };
    let ids: Vec<String> = net.subnet_ids.iter().map(|s| s.value.clone()).collect();
    let sdk = sdk_config_in(imported.region.as_ref().map(|r| r.value.as_str())).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let out = ec2.describe_subnets().set_subnet_ids(Some(ids.clone())).send().await.map_err(aws_err("ec2:DescribeSubnets"))?;
    let vpcs: BTreeSet<&str> = out.subnets().iter().filter_map(|s| s.vpc_id()).collect();
    match vpcs.len() {
        1 => Ok(vpcs.first().map(|v| v.to_string())),
        0 => bail!("--resolve-vpc: EC2 knows none of the Ray file's subnets ({}) in this account and region", ids.join(", ")),
        _ => bail!(
            "--resolve-vpc: the Ray file's subnets are in several VPCs ({}): a cluster lives in one; pass --vpc-id to choose",
            vpcs.into_iter().collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(not(feature = "aws"))]
pub async fn of_subnets(_imported: &Imported) -> Result<Option<String>> {
    Err(fleetform_runtime::without_aws("`fleetform import ray --resolve-vpc` (it asks EC2)"))
}
