
pub use crate::types::error::_token_already_exists_exception::TokenAlreadyExistsException;

pub use crate::types::error::_already_exists_exception::AlreadyExistsException;

pub use crate::types::error::_insufficient_capabilities_exception::InsufficientCapabilitiesException;

pub use crate::types::error::_limit_exceeded_exception::LimitExceededException;

pub use crate::types::error::_change_set_not_found_exception::ChangeSetNotFoundException;

mod _already_exists_exception;

mod _change_set_not_found_exception;

mod _insufficient_capabilities_exception;

mod _limit_exceeded_exception;

mod _token_already_exists_exception;

/// Builders
pub mod builders;
