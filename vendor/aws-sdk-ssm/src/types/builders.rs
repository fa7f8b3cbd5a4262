
pub use crate::types::_parameter::ParameterBuilder;
