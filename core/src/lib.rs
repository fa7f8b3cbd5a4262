//! fleetform-core: the pure types every fleetform crate shares. No AWS clients, no I/O
//! beyond reading a spec file: specs and their validation, resources, task records, the
//! cluster store's key layout, the task queue contract and the IMDS documents.

pub mod data_access;
pub mod diag;
pub mod error_chain;
pub mod imds;
pub mod input;
pub mod instance;
pub mod job;
pub mod layout;
pub mod queue;
pub mod resources;
pub mod s3_prefix;
pub mod spec;
pub mod task;

pub use diag::Diagnostics;
pub use job::JobSpec;
pub use resources::Resources;
pub use spec::ClusterSpec;
