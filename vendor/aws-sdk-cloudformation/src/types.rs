
pub use crate::types::_rollback_configuration::RollbackConfiguration;

pub use crate::types::_deployment_config::DeploymentConfig;

pub use crate::types::_on_failure::OnFailure;

pub use crate::types::_deletion_mode::DeletionMode;

pub use crate::types::_stack_drift_status::StackDriftStatus;

pub use crate::types::_stack_resource_detail::StackResourceDetail;

pub use crate::types::_hook_invocation_point::HookInvocationPoint;

pub use crate::types::_hook_failure_mode::HookFailureMode;

pub use crate::types::_hook_status::HookStatus;

pub use crate::types::_template_stage::TemplateStage;

pub use crate::types::_parameter::Parameter;

pub use crate::types::_capability::Capability;

pub use crate::types::_tag::Tag;

pub use crate::types::_deployment_config_mode::DeploymentConfigMode;

pub use crate::types::_stack_event::StackEvent;

pub use crate::types::_resource_status::ResourceStatus;

pub use crate::types::_stack_resource_drift_information::StackResourceDriftInformation;

pub use crate::types::_module_info::ModuleInfo;

pub use crate::types::_stack_resource_drift_status::StackResourceDriftStatus;

pub use crate::types::_stack::Stack;

pub use crate::types::_stack_status::StackStatus;

pub use crate::types::_rollback_trigger::RollbackTrigger;

pub use crate::types::_operation_type::OperationType;

pub use crate::types::_detailed_status::DetailedStatus;

pub use crate::types::_stack_drift_information::StackDriftInformation;

pub use crate::types::_output::Output;

pub use crate::types::_operation_entry::OperationEntry;

mod _capability;

mod _deletion_mode;

mod _deployment_config;

mod _deployment_config_mode;

mod _detailed_status;

mod _hook_failure_mode;

mod _hook_invocation_point;

mod _hook_status;

mod _module_info;

mod _on_failure;

mod _operation_entry;

mod _operation_type;

mod _output;

mod _parameter;

mod _resource_status;

mod _rollback_configuration;

mod _rollback_trigger;

mod _stack;

mod _stack_drift_information;

mod _stack_drift_status;

mod _stack_event;

mod _stack_resource_detail;

mod _stack_resource_drift_information;

mod _stack_resource_drift_status;

mod _stack_status;

mod _tag;

mod _template_stage;

/// Builders
pub mod builders;

/// Error types that AWS CloudFormation can respond with.
pub mod error;
