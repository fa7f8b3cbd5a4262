//! The one AWS SDK configuration builder of every fleetform process (the `aws` feature):
//! the standard chain (profiles, AWS_REGION, AWS_ENDPOINT_URL for moto), a region when the
//! caller names one (a cluster spec's `provider.region`), and the standard retry mode with
//! more attempts. The control plane builds its clients from it, the agent its S3 and SQS
//! access; both reach it through [`crate::Connections`], never through a process-global.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Attempts of the SDK's standard retry mode (exponential backoff with jitter) before a
/// throttled call is reported: AWS's default of 3 is too few for a 100-node describe
/// loop on a busy account.
pub const MAX_ATTEMPTS: u32 = 10;

/// The longest wait between two attempts: throttling clears within seconds, and a command
/// should not sit silent for minutes.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// The SDK configuration: the standard chain, with `region` first when given (a command's
/// spec); without it the chain's region (AWS_REGION, a profile, the instance's metadata).
pub async fn sdk_config_in(region: Option<&str>) -> SdkConfig {
    let retry = RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_max_backoff(MAX_BACKOFF);
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry);
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

/// The AWS partition of a region, for ARNs (`arn:aws-cn:...` in China).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn partitions_follow_the_region_prefix() {
        assert_eq!(super::partition_of("eu-west-1"), "aws");
        assert_eq!(super::partition_of("cn-north-1"), "aws-cn");
        assert_eq!(super::partition_of("us-gov-west-1"), "aws-us-gov");
    }
}
