
pub use crate::types::_parameter::Parameter;

pub use crate::types::_parameter_type::ParameterType;

mod _parameter;

mod _parameter_type;

/// Builders
pub mod builders;

/// Error types that Amazon Simple Systems Manager (SSM) can respond with.
pub mod error;
