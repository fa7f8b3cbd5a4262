
pub use crate::types::error::_token_already_exists_exception::TokenAlreadyExistsExceptionBuilder;

pub use crate::types::error::_already_exists_exception::AlreadyExistsExceptionBuilder;

pub use crate::types::error::_insufficient_capabilities_exception::InsufficientCapabilitiesExceptionBuilder;

pub use crate::types::error::_limit_exceeded_exception::LimitExceededExceptionBuilder;

pub use crate::types::error::_change_set_not_found_exception::ChangeSetNotFoundExceptionBuilder;
