//! What the stages create, read and delete, one module per kind of AWS resource, in the
//! order `apply` creates them: the CloudFormation [`stacks`] (network, data, IAM) rendered
//! from [`stack_templates`] with the roles' [`iam_policies`], and the checks of a network
//! the user brings ([`existing_network`]); the task [`queues`]; the [`store_artifacts`]
//! nodes install ([`node_binaries`] decides which); the [`launch_templates`] with their
//! [`user_data`] and [`setup_script`]; the [`nodes`] themselves and their [`placement`].

pub mod stacks;
pub mod stack_templates;
pub mod iam_policies;
pub mod existing_network;
pub mod queues;
pub mod store_artifacts;
pub mod node_binaries;
pub mod launch_templates;
pub mod user_data;
pub mod setup_script;
pub mod nodes;
pub mod placement;
