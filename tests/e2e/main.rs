//! End-to-end tests, one binary. Each module says why it needs more than a unit test.

mod harness;
mod cli;
mod local_jobs;
mod local_life;
mod python_compat;
mod python_step;
mod resilience;
mod moto;
mod aws_reconcile;
mod aws_config;
mod aws_dataplane;
mod aws_byo_vpc;
mod aws_network;
mod install_binary;
mod elf;
mod aws_iam;
mod autoscale;
mod faults;
mod labs;
mod import_ray;
mod validate;
mod dashboard;
mod boot;
mod boot_image;
mod boot_node;
