//! What an EC2 instance type name tells us without asking AWS: architecture, vCPUs,
//! memory class and local NVMe. Enough to validate specs offline and to pack demand;
//! the reconciler still confirms the AMI's architecture with DescribeImages.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    Arm64,
}

impl Arch {
    /// The name `uname -m` prints on such a node; used for `bin/<arch>/` in the store.
    pub fn uname(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }
    /// The name EC2 and SSM use (`DescribeImages` Architecture, AL2023 parameter suffix).
    pub fn ec2(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
    pub fn from_ec2(s: &str) -> Option<Self> {
        match s {
            "x86_64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
    pub fn of_this_machine() -> Option<Self> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ec2())
    }
}

/// Facts derived from an instance type name such as `r7i.2xlarge` or `c7gd.16xlarge`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFacts {
    pub family: String,
    pub arch: Arch,
    pub vcpus: u32,
    pub memory_gib: f64,
    /// `d` in the family's attributes: the type has local NVMe instance store.
    pub local_nvme: bool,
}

/// Parse an instance type name. Returns None for names that do not follow EC2's
/// `<class><generation><attributes>.<size>` scheme.
pub fn facts(instance_type: &str) -> Option<InstanceFacts> {
    let (family, size) = instance_type.split_once('.')?;
    let family_core = family.split('-').next()?; // m7i-flex -> m7i
    let class_end = family_core.find(|c: char| c.is_ascii_digit())?;
    let class = &family_core[..class_end];
    let rest = &family_core[class_end..];
    let gen_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if gen_end == 0 || class.is_empty() {
        return None;
    }
    let attrs = &rest[gen_end..];
    // Graviton families carry `g` among their attributes (c7g, r8g, m6gd, c6gn);
    // `a1` is the first-generation Graviton.
    let arch = if attrs.contains('g') || family_core == "a1" { Arch::Arm64 } else { Arch::X86_64 };
    let vcpus = match size {
        "nano" | "micro" | "small" | "medium" => 1,
        "large" => 2,
        "xlarge" => 4,
        "metal" => 96,
        s => s.strip_suffix("xlarge")?.parse::<u32>().ok()? * 4,
    };
    let gib_per_vcpu = match class.chars().next()? {
        'c' => 2.0,
        'm' | 't' | 'a' => 4.0,
        'r' => 8.0,
        'x' | 'u' | 'z' => 16.0,
        'i' | 'd' => 8.0,
        _ => 4.0,
    };
    Some(InstanceFacts {
        family: family.to_string(),
        arch,
        vcpus,
        memory_gib: vcpus as f64 * gib_per_vcpu,
        local_nvme: attrs.contains('d') || class == "i" || class == "d",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workshop_types() {
        let r7i = facts("r7i.2xlarge").unwrap();
        assert_eq!((r7i.arch, r7i.vcpus, r7i.memory_gib, r7i.local_nvme), (Arch::X86_64, 8, 64.0, false));
        let r8g = facts("r8g.2xlarge").unwrap();
        assert_eq!((r8g.arch, r8g.vcpus), (Arch::Arm64, 8));
        let c7gd = facts("c7gd.16xlarge").unwrap();
        assert_eq!((c7gd.arch, c7gd.vcpus, c7gd.local_nvme), (Arch::Arm64, 64, true));
        assert_eq!(facts("m7i.xlarge").unwrap().vcpus, 4);
        assert_eq!(facts("m7i-flex.large").unwrap().arch, Arch::X86_64);
        assert_eq!(facts("c6gn.medium").unwrap().arch, Arch::Arm64);
        assert!(facts("bogus").is_none());
        assert!(facts("r7i.hugexlarge").is_none());
    }
}
