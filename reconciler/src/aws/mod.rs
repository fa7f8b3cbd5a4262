//! The AWS provider (docs/DESIGN.md, decisions 1 to 4): `plan`, `apply` and `destroy` for
//! the workshop cluster.
//!
//! validate → observe (tags and deterministic names, no state file) → diff (pure) →
//! plan (data) → apply (exactly the plan, in dependency order). Layers: the network
//! stack, the data (bucket) stack, the IAM stack, task queues, store artifacts,
//! launch templates, nodes. See docs/aws.md.
//!
//! For the autoscaler: [`provider::AwsProvider`], the EC2 [`NodeProvider`](crate::autoscaler::NodeProvider).

pub mod agent_upload;
pub mod apply;
pub mod commands;
pub mod context;
pub mod desired;
pub mod destroy_sweep;
pub mod diff;
pub mod errors;
pub mod existing_network;
pub mod iam;
pub mod launch_templates;
pub mod model;
pub mod names;
pub mod node_binaries;
pub mod nodes;
pub mod observe;
pub mod placement;
pub mod plan;
pub mod provider;
pub mod queues;
pub mod render;
pub mod setup_script;
pub mod stack_diff;
pub mod stacks;
pub mod userdata;

pub use context::{AwsContext, ContextOptions};
pub use nodes::{FaultInjector, NoFaults};
pub use provider::AwsProvider;
pub use plan::Plan;
