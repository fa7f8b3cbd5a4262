//! The AWS provider (docs/DESIGN.md, decisions 1 to 4): `plan`, `apply` and `destroy` for
//! the workshop cluster.
//!
//! validate → observe (tags and deterministic names, no state file) → diff (pure) →
//! plan (data) → apply (exactly the plan, in dependency order). Layers: the network
//! stack, the data (bucket) stack, the IAM stack, task queues, store artifacts,
//! launch templates, nodes. See docs/aws.md.
//!
//! The path of `fleetform plan | apply | destroy` ([`commands`]), top-down:
//!
//! ```text
//!   cluster.yaml ──► stages::desired ──┐
//!                    (spec rendered,   │
//!                     AMIs resolved)   ├──► stages::diff ──► stages::plan ──► stages::apply
//!                                      │    (pure)           (data, shown)    (exactly the plan,
//!   AWS ───────────► stages::live ─────┘                                      in dependency order)
//!                    (by tags and names,                                            │
//!                     no state file)                       after a destroy: stages::destroy_sweep
//!
//!   live reads AWS and apply changes it through resources::{stacks, queues, store_artifacts,
//!   launch_templates, nodes, ...}: one module per kind of resource.
//! ```
//!
//! [`stages`] are the steps of that path and the data between them ([`stages::state`]:
//! `Desired` and `Live`). [`resources`] are what the steps create, read and delete, one
//! module per kind: CloudFormation stacks and their templates, IAM policies, queues, store
//! artifacts, launch templates and user data, nodes and where they launch, and the checks
//! of a network the user brings. Beside them: the clients ([`context`]), errors mapped
//! at the boundary ([`errors`]), deterministic names and tags ([`names`]).
//!
//! For the autoscaler: [`provider::AwsProvider`], the EC2 [`NodeProvider`](crate::autoscaler::NodeProvider).

pub mod commands;
pub mod context;
pub mod errors;
pub mod names;
pub mod provider;
pub mod resources;
pub mod stages;

pub use context::{AwsContext, ContextOptions};
pub use provider::AwsProvider;
pub use stages::plan::Plan;
