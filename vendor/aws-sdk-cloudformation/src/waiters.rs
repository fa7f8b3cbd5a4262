
/// Supporting types for the `stack_create_complete` waiter.
pub mod stack_create_complete;

/// Supporting types for the `stack_delete_complete` waiter.
pub mod stack_delete_complete;

/// Supporting types for the `stack_update_complete` waiter.
pub mod stack_update_complete;

#[allow(clippy::needless_lifetimes)]
#[allow(clippy::let_and_return)]
pub(crate) mod matchers;
