
/// Supporting types for the `instance_terminated` waiter.
pub mod instance_terminated;

/// Supporting types for the `nat_gateway_deleted` waiter.
pub mod nat_gateway_deleted;

#[allow(clippy::needless_lifetimes)]
#[allow(clippy::let_and_return)]
pub(crate) mod matchers;
