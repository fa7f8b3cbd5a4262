//! SDK errors mapped at the boundary into the few cases a user acts on, each one
//! sentence that says what to do. The SDK's own text (with `DisplayErrorContext`, which
//! prints the whole source chain) is kept as detail.

use std::fmt::Debug;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Attempts of the SDK's standard retry mode before a throttled call is reported (the
/// one SDK configuration's, `fleetform_runtime::aws`).
pub use fleetform_runtime::aws::MAX_ATTEMPTS;

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
    /// Only a person can fix it (permissions, credentials, account settings): retrying
    /// sooner changes nothing (the autoscaler's error policy waits the longest).
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            AwsError::NoCredentials { .. }
                | AwsError::BadCredentials { .. }
                | AwsError::NoRegion
                | AwsError::RegionNotEnabled { .. }
                | AwsError::AccessDenied { .. }
                | AwsError::SpotServiceLinkedRole { .. }
        )
    }

    pub fn is_throttled(&self) -> bool {
        matches!(self, AwsError::Throttled { .. })
    }

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
    "SpotMaxPriceTooLow", "Unsupported",
];

pub fn is_capacity_code(code: &str) -> bool {
    CAPACITY_CODES.contains(&code)
}

/// EC2 codes that mean "this account may not have more here now": a quota (vCPUs per
/// instance class and market, the older instance count), or a subnet with no free
/// addresses. Not the pool's capacity, but for a launch the same outcome: the offering is
/// skipped for a while and the next one tried (Karpenter treats VcpuLimitExceeded as
/// unfulfillable capacity), and the operator is told which quota to raise.
pub const QUOTA_CODES: &[&str] =
    &["VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded", "InsufficientFreeAddressesInSubnet"];

pub fn is_quota_code(code: &str) -> bool {
    QUOTA_CODES.contains(&code)
}

/// A launch answer that means "not here, try the next offering": capacity or quota.
pub fn is_shortage(code: &str) -> bool {
    is_capacity_code(code) || is_quota_code(code)
}

/// One sentence for a quota code: which quota, and how to raise it. Service Quotas names
/// EC2's vCPU quotas by instance class and market; the standard classes' quota codes are
/// given (the other classes are named as the console lists them).
pub fn quota_advice(code: &str, spot: bool, instance_type: &str, subnet: &str) -> Option<String> {
    if code == "InsufficientFreeAddressesInSubnet" {
        return Some(format!(
            "subnet {subnet} has no free IP addresses ({code}): nodes go to the cluster's other subnets meanwhile; \
             free addresses there or give the cluster larger private subnets"
        ));
    }
    if !is_quota_code(code) {
        return None;
    }
    let class = instance_class(instance_type);
    let (quota, quota_code) = match (spot, class) {
        (false, "Standard (A, C, D, H, I, M, R, T, Z)") => (format!("Running On-Demand {class} instances"), Some("L-1216C47A")),
        (true, "Standard (A, C, D, H, I, M, R, T, Z)") => (format!("All {class} Spot Instance Requests"), Some("L-34B43A08")),
        (false, _) => (format!("Running On-Demand {class} instances"), None),
        (true, _) => (format!("All {class} Spot Instance Requests"), None),
    };
    let how = match quota_code {
        Some(q) => format!(
            "raise \"{quota}\" ({q}) in Service Quotas, e.g. `aws service-quotas request-service-quota-increase \
             --service-code ec2 --quota-code {q} --desired-value VCPUS`"
        ),
        None => format!("raise \"{quota}\" in Service Quotas (console: Service Quotas → Amazon EC2)"),
    };
    let market = if spot { "spot" } else { "on-demand" };
    Some(format!(
        "the account's {market} vCPU quota for {instance_type} is used up ({code}): {how}; \
         until then fleetform tries the node type's other offerings"
    ))
}

/// Instance family prefixes and their vCPU quota class, as Service Quotas names it; the
/// longer prefixes first (`inf` before the standard `i`). Anything else is standard.
const QUOTA_CLASSES: &[(&str, &str)] = &[
    ("inf", "Inf"),
    ("trn", "Trn"),
    ("dl", "DL"),
    ("hpc", "HPC"),
    ("vt", "G and VT"),
    ("g", "G and VT"),
    ("p", "P"),
    ("x", "X"),
    ("f", "F"),
];

/// EC2's vCPU quota class of an instance type.
fn instance_class(instance_type: &str) -> &'static str {
    let family = instance_type.split('.').next().unwrap_or_default();
    QUOTA_CLASSES
        .iter()
        .find(|(prefix, _)| family.starts_with(prefix))
        .map_or("Standard (A, C, D, H, I, M, R, T, Z)", |(_, class)| class)
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

/// An error EC2 answers inside a successful response (CreateFleet `instant` lists one per
/// override it could not launch), classified exactly as the same code in an `SdkError`.
pub fn from_answer(action: &'static str, code: &str, message: &str) -> AwsError {
    from_code(action, Some(code.to_string()), message.to_string(), code.to_string())
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
    fn quota_codes_name_the_quota_and_how_to_raise_it() {
        let on_demand = quota_advice("VcpuLimitExceeded", false, "m7i.2xlarge", "subnet-1").unwrap();
        assert_eq!(
            on_demand,
            "the account's on-demand vCPU quota for m7i.2xlarge is used up (VcpuLimitExceeded): raise \
             \"Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances\" (L-1216C47A) in Service Quotas, \
             e.g. `aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-1216C47A \
             --desired-value VCPUS`; until then fleetform tries the node type's other offerings"
        );
        let spot = quota_advice("MaxSpotInstanceCountExceeded", true, "c7g.4xlarge", "subnet-1").unwrap();
        assert!(spot.contains("\"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests\" (L-34B43A08)"), "{spot}");
        let gpu = quota_advice("VcpuLimitExceeded", false, "g5.xlarge", "subnet-1").unwrap();
        assert!(gpu.contains("\"Running On-Demand G and VT instances\" in Service Quotas"), "{gpu}");
        let addresses = quota_advice("InsufficientFreeAddressesInSubnet", false, "m7i.large", "subnet-9").unwrap();
        assert!(addresses.starts_with("subnet subnet-9 has no free IP addresses"), "{addresses}");
        assert!(quota_advice("InsufficientInstanceCapacity", false, "m7i.large", "s").is_none());
        assert!(is_shortage("VcpuLimitExceeded") && is_shortage("InsufficientInstanceCapacity") && !is_shortage("InvalidParameterValue"));
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
