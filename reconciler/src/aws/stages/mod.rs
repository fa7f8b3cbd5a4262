//! The steps of `plan`, `apply` and `destroy`, in the order they run: [`desired`] (the
//! spec rendered and resolved) and [`live`] (what AWS has, by tags and names) meet in
//! [`diff`] (pure, with [`stack_diff`] for templates), which makes a [`plan`] (data);
//! [`apply`] executes exactly it, and after a destroy [`destroy_sweep`] looks for
//! leftovers. [`state`] holds the data on both sides of the diff.

pub mod desired;
pub mod live;
pub mod state;
pub mod diff;
pub mod stack_diff;
pub mod plan;
pub mod apply;
pub mod destroy_sweep;
