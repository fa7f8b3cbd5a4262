//! End-to-end tests, one binary. Each module says why it needs more than a unit test.

mod harness;
mod local_jobs;
mod python_compat;
mod resilience;
mod moto;
mod aws_reconcile;
mod aws_dataplane;
mod autoscale;
mod import_ray;
