//! End-to-end tests of the AWS provider (on moto, booted nodes, IAM evaluation): the
//! binary that needs the `aws` feature. The local provider's are in tests/local. Each
//! module says why it needs more than a unit test.

#[path = "../local/harness.rs"]
#[allow(dead_code)] // the AWS tests use a few of the local harness's helpers
mod harness;
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
mod import_ray;
mod boot;
mod boot_image;
mod boot_node;
