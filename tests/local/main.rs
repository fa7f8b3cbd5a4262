//! End-to-end tests on the local provider: one binary that builds without the `aws`
//! feature (`cargo test -p fleetform --no-default-features --test local`), so the data
//! plane, the CLI and the dashboard are tested end to end without compiling the AWS SDK.
//! The AWS provider's tests are the `e2e` binary (tests/e2e). Each module says why it
//! needs more than a unit test.

mod harness;
mod cli;
mod dashboard;
mod labs;
mod local_jobs;
mod local_life;
mod python_compat;
mod python_step;
mod resilience;
mod validate;
