//! SDK errors mapped at the boundary into the few cases a user acts on, each one
//! sentence that says what to do. The SDK's own text (with `DisplayErrorContext`, which
//! prints the whole source chain) is kept as detail.

use std::fmt::Debug;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Attempts of the SDK's standard retry mode (exponential backoff with jitter) before a
/// throttled call is reported: AWS's default of 3 is too few for a 100-node describe
/// loop on a busy account.
pub const MAX_ATTEMPTS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS credentials were found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or run `aws sso login`, then try again ({detail})")]
    NoCredentials { detail: String },
    #[error("AWS rejected the credentials ({code}): check AWS_PROFILE or the access key, or refresh the session with `aws sso login`")]
    BadCredentials { code: String },
    #[error("no AWS region is set: add `provider.region` to the cluster spec or set AWS_REGION")]
    NoRegion,
    #[error("the account has not enabled region {region}: enable it (Account settings → AWS Regions) or choose another `provider.region`")]
    RegionNotEnabled { region: String },
    #[error("cannot reach AWS for {action}: check the region (`provider.region` / AWS_REGION), AWS_ENDPOINT_URL and the network ({detail})")]
    Unreachable { action: &'static str, detail: String },
    #[error("access denied: allow {needs} for the identity running fleetform ({detail})")]
    AccessDenied { action: &'static str, needs: String, detail: String },
    #[error("AWS kept throttling {action} after {MAX_ATTEMPTS} attempts with backoff: wait a minute and run again")]
    Throttled { action: &'static str },
    #[error(
        "EC2 cannot launch spot instances in this account yet: it needs the service-linked role \
         AWSServiceRoleForEC2Spot, which does not exist and which the identity launching may not create; \
         create it once with `aws iam create-service-linked-role --aws-service-name spot.amazonaws.com` \
         as an administrator ({detail})"
    )]
    SpotServiceLinkedRole { detail: String },
    #[error("{action} failed: {detail}")]
    Api { action: &'static str, code: Option<String>, detail: String },
}

impl AwsError {
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

const THROTTLING: &[&str] = &[
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "RequestLimitExceeded", "TooManyRequestsException", "SlowDown", "PriorRequestNotComplete",
];
const DENIED: &[&str] = &["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess", "AuthorizationError"];
const BAD_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure", "SignatureDoesNotMatch",
    "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId", "InvalidToken",
];

/// EC2 codes that mean "this offering (market, type, zone) has no capacity now":
/// the next offering is tried rather than failing the launch.
pub const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity",
    "InsufficientReservedInstanceCapacity", "InsufficientCapacityOnHost", "UnfulfillableCapacity",
    "MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow", "Unsupported",
];

pub fn is_capacity_code(code: &str) -> bool {
    CAPACITY_CODES.contains(&code)
}

/// EC2's answer when the account has no AWSServiceRoleForEC2Spot and the caller may not
/// create it. CreateFleet may report it wrapped in another code (`UnfulfillableCapacity`,
/// a capacity code) with the real one in the message, so both are looked at: it must not
/// be taken for a capacity shortage, cached and retried on the next offering.
pub fn is_missing_spot_role(code: &str, message: &str) -> bool {
    const CODE: &str = "ServiceLinkedRoleCreationNotPermitted";
    code.contains(CODE) || message.contains(CODE) || message.contains("service-linked role for EC2 Spot")
}

/// Map an SDK error of the call `action` (named as its IAM action, `ec2:RunInstances`).
pub fn classify<E, R>(action: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&err).to_string();
    let code = err.code().map(str::to_string);
    let message = err.message().unwrap_or_default().to_string();
    match &err {
        SdkError::ServiceError(_) => from_code(action, code, message, detail),
        _ if detail.to_ascii_lowercase().contains("credential") => AwsError::NoCredentials { detail: one_line(&detail) },
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => AwsError::Unreachable { action, detail: one_line(&detail) },
        _ => AwsError::Api { action, code, detail: one_line(&detail) },
    }
}

fn from_code(action: &'static str, code: Option<String>, message: String, detail: String) -> AwsError {
    let c = code.as_deref().unwrap_or("");
    let shown = if message.is_empty() { one_line(&detail) } else { format!("{c}: {message}") };
    if is_missing_spot_role(c, &message) {
        AwsError::SpotServiceLinkedRole { detail: shown }
    } else if THROTTLING.contains(&c) {
        AwsError::Throttled { action }
    } else if DENIED.contains(&c) {
        AwsError::AccessDenied { action, needs: denied_permission(action, &message), detail: shown }
    } else if BAD_CREDENTIALS.contains(&c) {
        AwsError::BadCredentials { code: c.to_string() }
    } else if c == "OptInRequired" {
        AwsError::RegionNotEnabled { region: message }
    } else {
        AwsError::Api { action, code, detail: shown }
    }
}

/// The permission a denial names. A call can be refused for another action than its own:
/// AWS's message then says which ("... is not authorized to perform: ec2:CreateTags on
/// resource: arn:...:instance/* because ..."), and a launch refused for its tags needs
/// `ec2:CreateTags` with `ec2:CreateAction` set to the API name, not `ec2:RunInstances`.
fn denied_permission(action: &str, message: &str) -> String {
    let named = message.split_once("not authorized to perform: ").and_then(|(_, rest)| {
        let (denied, rest) = rest.split_once(" on resource: ")?;
        let resource = rest.split_whitespace().next()?;
        Some((denied.trim().to_string(), resource.trim_end_matches(['.', ',']).to_string()))
    });
    match named {
        Some((denied, resource)) if denied == "ec2:CreateTags" && matches!(action, "ec2:RunInstances" | "ec2:CreateFleet") => {
            let api = action.trim_start_matches("ec2:");
            format!(
                "`ec2:CreateTags` on `{resource}` with condition `ec2:CreateAction` = `{api}` \
                 (tags given at launch are authorized as CreateTags)"
            )
        }
        Some((denied, resource)) => format!("`{denied}` on `{resource}`"),
        None => format!("`{action}`"),
    }
}

/// One line, without the Debug dump `DisplayErrorContext` appends after the causes.
fn one_line(s: &str) -> String {
    let cut = ["DispatchFailure(", "ServiceError(", "TimeoutError(", "ConstructionFailure(", "ResponseError("]
        .iter()
        .filter_map(|m| s.find(&format!(" ({m}")))
        .min()
        .unwrap_or(s.len());
    s[..cut].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `?`-friendly: `.map_err(aws_err("ec2:DescribeInstances"))`.
pub fn aws_err<E, R>(action: &'static str) -> impl FnOnce(SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    move |e| anyhow::Error::new(classify(action, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_actionable_sentences() {
        let e = from_code("ec2:RunInstances", Some("UnauthorizedOperation".into()), "You are not authorized".into(), String::new());
        assert_eq!(
            e.to_string(),
            "access denied: allow `ec2:RunInstances` for the identity running fleetform (UnauthorizedOperation: You are not authorized)"
        );
        // A launch refused for its tags names CreateTags and the condition, not the launch.
        let message = "You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/fleetform-demo-head/i-1 \
                       is not authorized to perform: ec2:CreateTags on resource: arn:aws:ec2:us-west-2:123456789012:instance/* \
                       because no identity-based policy allows the ec2:CreateTags action. Encoded authorization failure message: abc";
        let e = from_code("ec2:CreateFleet", Some("UnauthorizedOperation".into()), message.into(), String::new());
        assert!(
            e.to_string().starts_with(
                "access denied: allow `ec2:CreateTags` on `arn:aws:ec2:us-west-2:123456789012:instance/*` with condition \
                 `ec2:CreateAction` = `CreateFleet` (tags given at launch are authorized as CreateTags) for the identity running fleetform"
            ),
            "{e}"
        );
        let message = message.replace("ec2:CreateTags on", "iam:PassRole on").replace(
            "arn:aws:ec2:us-west-2:123456789012:instance/*",
            "arn:aws:iam::123456789012:role/fleetform-demo-worker",
        );
        let e = from_code("ec2:RunInstances", Some("UnauthorizedOperation".into()), message, String::new());
        assert!(e.to_string().starts_with("access denied: allow `iam:PassRole` on `arn:aws:iam::123456789012:role/fleetform-demo-worker` for"), "{e}");
        let e = from_code("ec2:DescribeInstances", Some("RequestLimitExceeded".into()), String::new(), String::new());
        assert_eq!(e.to_string(), "AWS kept throttling ec2:DescribeInstances after 10 attempts with backoff: wait a minute and run again");
        let e = from_code("sts:GetCallerIdentity", Some("InvalidClientTokenId".into()), String::new(), String::new());
        assert!(e.to_string().starts_with("AWS rejected the credentials (InvalidClientTokenId)"));
        assert!(is_capacity_code("InsufficientInstanceCapacity") && !is_capacity_code("InvalidParameterValue"));
    }

    #[test]
    fn a_missing_spot_service_linked_role_is_one_sentence_not_a_capacity_shortage() {
        let message = "The provided credentials do not have permission to create the service-linked role for EC2 Spot Instances.";
        let e = from_code("ec2:CreateFleet", Some("AuthFailure.ServiceLinkedRoleCreationNotPermitted".into()), message.into(), String::new());
        let text = e.to_string();
        assert!(text.starts_with("EC2 cannot launch spot instances in this account yet: it needs the service-linked role AWSServiceRoleForEC2Spot"), "{text}");
        assert!(text.contains("`aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`"), "{text}");
        // Wrapped in a capacity code by CreateFleet: still the role, not capacity.
        assert!(is_missing_spot_role("UnfulfillableCapacity", &format!("AuthFailure.ServiceLinkedRoleCreationNotPermitted: {message}")));
        assert!(!is_missing_spot_role("UnfulfillableCapacity", "There is no Spot capacity available that matches your request."));
    }
}
