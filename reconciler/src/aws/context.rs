//! The AWS clients of a command, built from the one `SdkConfig` (the runtime's builder,
//! `fleetform_runtime::aws`: the standard chain, the spec's region when it names one, the
//! standard retry mode with more attempts). Only the clients: what nodes launch into is
//! `placement`, the capacity cache is the autoscaler's (persisted).

use anyhow::Result;
use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use fleetform_core::ClusterSpec;
pub use fleetform_runtime::aws::sdk_config_in;
use fleetform_runtime::aws::partition_of;

use crate::aws::errors::{aws_err, AwsError};

#[derive(Clone, Default)]
pub struct ContextOptions {
    /// Extra SDK interceptors on every client (the plan benchmark counts calls with one;
    /// tests record the requests EC2 receives).
    pub interceptors: Vec<SharedInterceptor>,
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
}

/// The shared SDK configuration: the standard chain, with the spec's region first.
/// Before there is a spec (`fleetform import` asks SSM), `sdk_config_in` directly.
pub async fn sdk_config(spec: &ClusterSpec) -> SdkConfig {
    sdk_config_in(spec.provider.region.as_deref()).await
}

impl AwsContext {
    pub async fn connect(spec: &ClusterSpec) -> Result<Self> {
        let sdk = sdk_config(spec).await;
        Self::connect_with(spec, sdk, ContextOptions::default()).await
    }

    /// Build the clients from `sdk` and check the credentials (sts:GetCallerIdentity),
    /// so that a missing profile or a wrong region fails first, in one sentence.
    pub async fn connect_with(
        spec: &ClusterSpec,
        sdk: SdkConfig,
        options: ContextOptions,
    ) -> Result<Self> {
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or(AwsError::NoRegion)?;
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
            let mut b = aws_sdk_sts::config::Builder::from(&sdk)
                .retry_config(RetryConfig::standard().with_max_attempts(2));
            for i in &options.interceptors {
                b.push_interceptor(i.clone());
            }
            aws_sdk_sts::Client::from_conf(b.build())
        };
        let who = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(aws_err("sts:GetCallerIdentity"))?;
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
        })
    }

    pub fn cluster(&self) -> &str {
        &self.spec.cluster_name
    }
}
