//! The imported spec before it is written: fleetform's fields, each with the place in
//! the Ray file it came from (written as a comment next to it).

use fleetform_core::diag::YamlPath;
use fleetform_core::instance::Arch;
use fleetform_core::spec::Market;

/// A value and the comment saying where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub from: String,
}

impl<T> Sourced<T> {
    pub fn new(value: T, from: impl Into<String>) -> Self {
        Self { value, from: from.into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    Al2023,
    Ami { id: String, arch: Arch },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RootVolume {
    pub size_gb: Option<Sourced<u32>>,
    pub volume_type: Option<Sourced<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeType {
    pub name: String,
    /// Its node_config in the Ray file (`available_node_types.X.node_config`, `head_node`).
    pub config_at: YamlPath,
    pub resources: Sourced<Vec<(String, f64)>>,
    pub min_workers: Option<Sourced<u32>>,
    pub max_workers: Option<Sourced<u32>>,
    pub instance_types: Sourced<Vec<String>>,
    pub market: Sourced<Market>,
    /// None: fleetform's default (`al2023`), said in the comment.
    pub image: Option<Sourced<Image>>,
    pub root_volume: Option<RootVolume>,
}

/// Subnets and security groups the Ray file launches into (bring-your-own network).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ByoNetwork {
    /// The existing VPC they are in, when the user named it (`--vpc-id`).
    pub vpc_id: Option<Sourced<String>>,
    pub subnet_ids: Vec<Sourced<String>>,
    pub security_group_ids: Vec<Sourced<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The Ray file's name, for the header comment.
    pub source: String,
    pub cluster_name: Sourced<String>,
    pub region: Option<Sourced<String>>,
    pub zones: Option<Sourced<Vec<String>>>,
    pub byo_network: Option<ByoNetwork>,
    pub bucket: String,
    pub max_workers: Sourced<u32>,
    pub upscaling_speed: Option<Sourced<f64>>,
    pub target_utilization_fraction: Option<Sourced<f64>>,
    pub idle_timeout_minutes: Option<Sourced<f64>>,
    pub setup_commands: Vec<Sourced<String>>,
    pub head_node_type: Sourced<String>,
    /// The head first, then the workers in name order.
    pub node_types: Vec<NodeType>,
}
