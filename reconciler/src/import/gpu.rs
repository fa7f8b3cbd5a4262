//! GPUs per instance type, for a Ray file that leaves `resources` out: Ray asks EC2
//! (DescribeInstanceTypes' GpuInfo, in `fillout_available_node_types_resources` of its
//! AWS node provider) and advertises `GPU: n`; import works offline, so it keeps the
//! NVIDIA counts of AWS's accelerated-computing instance tables for the families Ray's
//! examples and users name.

/// `GPU` as Ray and fleetform spell the resource.
pub const GPU: &str = "GPU";

/// What fleetform does with a `GPU` resource, said once per node type that has one.
pub const WHAT_FLEETFORM_DOES: &str = "fleetform treats `GPU` like any custom resource, as a label: tasks that \
ask for `GPU` run only on node types offering it, and the autoscaler starts these nodes for such tasks. It does \
not count GPUs per task (a node runs as many tasks as its CPU slots allow, each sees every GPU) nor set \
CUDA_VISIBLE_DEVICES, and `image: al2023` has no NVIDIA driver or CUDA: install them in setup_commands or give \
an explicit GPU AMI";

/// (family, size, NVIDIA GPUs).
const TABLE: &[(&str, &str, u32)] = &[
    ("p2", "xlarge", 1), ("p2", "8xlarge", 8), ("p2", "16xlarge", 16),
    ("p3", "2xlarge", 1), ("p3", "8xlarge", 4), ("p3", "16xlarge", 8), ("p3dn", "24xlarge", 8),
    ("p4d", "24xlarge", 8), ("p4de", "24xlarge", 8), ("p5", "48xlarge", 8), ("p5e", "48xlarge", 8),
    ("g3s", "xlarge", 1), ("g3", "4xlarge", 1), ("g3", "8xlarge", 2), ("g3", "16xlarge", 4),
    ("g4dn", "12xlarge", 4), ("g4dn", "metal", 8),
    ("g5", "12xlarge", 4), ("g5", "24xlarge", 4), ("g5", "48xlarge", 8),
    ("g6", "12xlarge", 4), ("g6", "24xlarge", 4), ("g6", "48xlarge", 8),
    ("g6e", "12xlarge", 4), ("g6e", "24xlarge", 4), ("g6e", "48xlarge", 8),
    ("g5g", "16xlarge", 2), ("g5g", "metal", 2),
];

/// Families whose other sizes (xlarge to 16xlarge) have one GPU.
const ONE_GPU_FAMILIES: &[&str] = &["g4dn", "g5", "g6", "g6e", "g5g"];

/// The instance type's NVIDIA GPUs: `Some(0)` for a family without, `None` for a GPU
/// family whose size the table does not know.
pub fn gpus(instance_type: &str) -> Option<u32> {
    let (family, size) = instance_type.split_once('.')?;
    if let Some((_, _, n)) = TABLE.iter().find(|(f, s, _)| *f == family && *s == size) {
        return Some(*n);
    }
    if ONE_GPU_FAMILIES.contains(&family) && size.ends_with("xlarge") {
        return Some(1);
    }
    if is_gpu_family(family) {
        return None;
    }
    Some(0)
}

fn is_gpu_family(family: &str) -> bool {
    TABLE.iter().any(|(f, _, _)| *f == family) || ONE_GPU_FAMILIES.contains(&family)
}

#[cfg(test)]
mod tests {
    use super::gpus;

    #[test]
    fn counts_of_the_types_ray_examples_use() {
        for (t, n) in [("p2.xlarge", Some(1)), ("p3.8xlarge", Some(4)), ("g4dn.xlarge", Some(1)), ("g5.48xlarge", Some(8)), ("m5.large", Some(0)), ("p3.4xlarge", None)] {
            assert_eq!(gpus(t), n, "{t}");
        }
    }
}
