//! How this process reaches what a URI names: `Connections` is built once per process (a
//! `fleetform` command from its cluster spec's region, the agent from the standard chain
//! at start) and handed to every place that opens a location or a queue by URI. It
//! replaces a process-global configuration, where the first one installed silently won.

#[cfg(feature = "aws")]
use std::sync::Arc;

/// The process's way to S3 and SQS. Cheap to clone: clones share one AWS configuration.
#[derive(Clone, Default)]
pub struct Connections {
    /// Loaded at the first s3:// or sqs:// opened, unless given: a local-only run never
    /// reads the AWS configuration chain (nor waits on it).
    #[cfg(feature = "aws")]
    aws: Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>,
}

impl Connections {
    /// The AWS configuration of the process's environment (the standard chain, its
    /// region), loaded when first needed. In a build without the `aws` feature, s3:// and
    /// sqs:// URIs give the [`crate::without_aws`] error.
    pub fn from_env() -> Connections {
        Connections::default()
    }

    /// Connections through an explicit AWS configuration (a command's, built from its
    /// spec by [`crate::aws::sdk_config_in`]; a test's, pointed at moto).
    #[cfg(feature = "aws")]
    pub fn with_sdk(sdk: aws_config::SdkConfig) -> Connections {
        Connections { aws: Arc::new(tokio::sync::OnceCell::new_with(Some(sdk))) }
    }

    /// The AWS configuration, loaded on first use when none was given.
    #[cfg(feature = "aws")]
    pub async fn aws(&self) -> &aws_config::SdkConfig {
        self.aws.get_or_init(|| crate::aws::sdk_config_in(None)).await
    }
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Connections");
        #[cfg(feature = "aws")]
        d.field("aws_region", &self.aws.get().and_then(|c| c.region()).map(|r| r.to_string()));
        d.finish()
    }
}
