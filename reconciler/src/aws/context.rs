//! One `SdkConfig` for everything (the standard chain: profiles, AWS_REGION,
//! AWS_ENDPOINT_URL for moto), the spec's region when it names one, the standard retry
//! mode with more attempts, and the clients built from it. The autoscaler reuses this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use fleetform_core::ClusterSpec;
use tokio::sync::OnceCell;

use super::errors::{aws_err, AwsError, MAX_ATTEMPTS};
use super::nodes::{FaultInjector, NoFaults, Offering};
use super::names::StackKind;

/// How long an offering that reported no capacity is skipped (DESIGN.md decision 8):
/// long enough not to hammer a dry pool, short enough to retry within an autoscaler cycle.
pub const CAPACITY_CACHE_TTL: Duration = Duration::from_secs(180);

#[derive(Clone)]
pub struct ContextOptions {
    /// Extra SDK interceptors on every client (the plan benchmark counts calls with one).
    pub interceptors: Vec<SharedInterceptor>,
    /// The EC2 launch boundary's fault hook (tests inject capacity errors).
    pub faults: Arc<dyn FaultInjector>,
}

impl Default for ContextOptions {
    fn default() -> Self {
        Self { interceptors: Vec::new(), faults: Arc::new(NoFaults) }
    }
}

/// The private subnets and security groups nodes launch into: the one definition for
/// both forms of `network:`. Subnets come from the network stack's `PrivateSubnetIds`
/// output (the subnets it created, or the spec's `private_subnet_ids` in an existing
/// VPC), groups from its outputs plus the spec's `security_group_ids`.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// (subnet id, availability zone), in the spec's order.
    pub subnets: Vec<(String, String)>,
    pub head_security_group: String,
    pub worker_security_group: String,
    /// `network.security_group_ids` (existing VPC only), put on every node.
    pub extra_security_groups: Vec<String>,
}

impl NetworkInfo {
    /// Every group of a node: fleetform's (head or worker) first, then the user's.
    pub fn security_groups(&self, head: bool) -> Vec<String> {
        let own = if head { &self.head_security_group } else { &self.worker_security_group };
        std::iter::once(own.clone()).chain(self.extra_security_groups.iter().cloned()).collect()
    }
}

pub struct AwsContext {
    pub spec: ClusterSpec,
    pub sdk: SdkConfig,
    pub region: String,
    pub partition: String,
    pub account: String,
    pub ec2: aws_sdk_ec2::Client,
    pub cfn: aws_sdk_cloudformation::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub faults: Arc<dyn FaultInjector>,
    /// Offerings that recently reported no capacity, and when.
    pub(crate) capacity: Mutex<HashMap<Offering, Instant>>,
    network: OnceCell<NetworkInfo>,
}

/// The shared SDK configuration: the standard chain, with the spec's region first.
pub async fn sdk_config(spec: &ClusterSpec) -> SdkConfig {
    sdk_config_in(spec.provider.region.as_deref()).await
}

/// The same configuration before there is a spec (`fleetform import` asks SSM).
pub async fn sdk_config_in(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_max_backoff(Duration::from_secs(20)));
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

impl AwsContext {
    pub async fn connect(spec: &ClusterSpec) -> Result<Self> {
        let sdk = sdk_config(spec).await;
        Self::connect_with(spec, sdk, ContextOptions::default()).await
    }

    /// Build the clients from `sdk` and check the credentials (sts:GetCallerIdentity),
    /// so that a missing profile or a wrong region fails first, in one sentence.
    pub async fn connect_with(spec: &ClusterSpec, sdk: SdkConfig, options: ContextOptions) -> Result<Self> {
        let region = sdk.region().map(|r| r.to_string()).ok_or(AwsError::NoRegion)?;
        macro_rules! client {
            ($krate:ident) => {{
                let mut b = $krate::config::Builder::from(&sdk);
                for i in &options.interceptors {
                    b.push_interceptor(i.clone());
                }
                $krate::Client::from_conf(b.build())
            }};
        }
        // The identity check fails fast (2 attempts): a wrong endpoint or region should
        // not wait through the backoff meant for throttling.
        let sts = {
            let mut b = aws_sdk_sts::config::Builder::from(&sdk).retry_config(RetryConfig::standard().with_max_attempts(2));
            for i in &options.interceptors {
                b.push_interceptor(i.clone());
            }
            aws_sdk_sts::Client::from_conf(b.build())
        };
        let who = sts.get_caller_identity().send().await.map_err(aws_err("sts:GetCallerIdentity"))?;
        let account = who.account().unwrap_or_default().to_string();
        Ok(AwsContext {
            spec: spec.clone(),
            partition: partition_of(&region).to_string(),
            region,
            account,
            ec2: client!(aws_sdk_ec2),
            cfn: client!(aws_sdk_cloudformation),
            sqs: client!(aws_sdk_sqs),
            ssm: client!(aws_sdk_ssm),
            sdk,
            faults: options.faults,
            capacity: Mutex::new(HashMap::new()),
            network: OnceCell::new(),
        })
    }

    pub fn cluster(&self) -> &str {
        &self.spec.cluster_name
    }

    /// The network stack's subnets (with their zones) and security groups, read once.
    pub async fn network(&self) -> Result<&NetworkInfo> {
        self.network
            .get_or_try_init(|| async {
                let name = StackKind::Network.stack_name(self.cluster());
                let stack = super::observe::stack(self, StackKind::Network)
                    .await?
                    .with_context(|| format!("the network stack {name} does not exist: run `fleetform apply` first"))?;
                let out = |k: &str| {
                    stack.outputs.get(k).cloned().with_context(|| format!("stack {name} has no output {k}: run `fleetform apply`"))
                };
                let ids: Vec<String> = out("PrivateSubnetIds")?.split(',').map(str::to_string).collect();
                let described = self
                    .ec2
                    .describe_subnets()
                    .set_subnet_ids(Some(ids.clone()))
                    .send()
                    .await
                    .map_err(aws_err("ec2:DescribeSubnets"))?;
                let subnets = ids
                    .iter()
                    .map(|id| {
                        let zone = described
                            .subnets()
                            .iter()
                            .find(|s| s.subnet_id() == Some(id.as_str()))
                            .and_then(|s| s.availability_zone())
                            .unwrap_or_default()
                            .to_string();
                        (id.clone(), zone)
                    })
                    .collect();
                Ok(NetworkInfo {
                    subnets,
                    head_security_group: out("HeadSecurityGroupId")?,
                    worker_security_group: out("WorkerSecurityGroupId")?,
                    extra_security_groups: self.spec.network.security_group_ids.clone(),
                })
            })
            .await
    }
}
