//! The pruned AWS SDK crates in `vendor/` (made by `tools/prune_aws_sdk.py`, used through
//! `[patch.crates-io]`) must be the versions Cargo.lock resolves. After an SDK bump without
//! regenerating, Cargo ignores the stale patch and silently builds the full upstream crate
//! (the slow cold build the copies exist to avoid); this check names the command instead.

use std::path::Path;

/// One `[[package]]` of Cargo.lock: its version, and whether it comes from a registry (a
/// patched path dependency has no `source`).
#[derive(Debug, PartialEq)]
pub struct Locked {
    pub version: String,
    pub from_registry: bool,
}

/// Every `[[package]]` entry of Cargo.lock named `name`.
pub fn locked(lock: &str, name: &str) -> Vec<Locked> {
    lock.split("[[package]]")
        .filter(|entry| field(entry, "name").as_deref() == Some(name))
        .map(|entry| Locked {
            version: field(entry, "version").unwrap_or_default(),
            from_registry: field(entry, "source").is_some(),
        })
        .collect()
}

/// `key = "value"` of one Cargo.lock entry.
fn field(entry: &str, key: &str) -> Option<String> {
    entry.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?.trim();
        Some(rest.trim_matches('"').to_string())
    })
}

/// (crate name, version) from a PRUNED.md's `- upstream: NAME VERSION` line.
pub fn pruned_upstream(pruned_md: &str) -> Option<(String, String)> {
    let line = pruned_md.lines().find_map(|l| l.strip_prefix("- upstream: "))?;
    let (name, version) = line.trim().split_once(' ')?;
    Some((name.to_string(), version.to_string()))
}

/// The mismatches between each `vendor/*/PRUNED.md` under `root` and `lock` (the text of
/// Cargo.lock), each naming the fix.
pub fn mismatches(root: &Path, lock: &str) -> Result<Vec<String>, String> {
    let vendor = root.join("vendor");
    let dirs = std::fs::read_dir(&vendor).map_err(|e| format!("cannot list {}: {e}", vendor.display()))?;
    let mut problems = Vec::new();
    for dir in dirs {
        let dir = dir.map_err(|e| format!("cannot list {}: {e}", vendor.display()))?.path();
        let md_path = dir.join("PRUNED.md");
        if !md_path.is_file() {
            continue;
        }
        let md = std::fs::read_to_string(&md_path).map_err(|e| format!("cannot read {}: {e}", md_path.display()))?;
        let (name, version) = pruned_upstream(&md)
            .ok_or_else(|| format!("{} has no `- upstream: NAME VERSION` line", md_path.display()))?;
        problems.extend(mismatch(&name, &version, &locked(lock, &name)));
    }
    Ok(problems)
}

fn mismatch(name: &str, version: &str, locked: &[Locked]) -> Option<String> {
    let fix = format!("regenerate the copy with `python3 tools/prune_aws_sdk.py {name}` (from the repository root)");
    match locked {
        [Locked { version: v, from_registry: false }] if v == version => None,
        [] => Some(format!("vendor/{name} ({version}) is not in Cargo.lock: remove the copy and its [patch.crates-io] entry, or depend on {name}")),
        found => {
            let seen: Vec<String> = found
                .iter()
                .map(|l| format!("{}{}", l.version, if l.from_registry { " from crates.io" } else { " (vendor/)" }))
                .collect();
            Some(format!("vendor/{name} is {name} {version} but Cargo.lock resolves {}: {fix}", seen.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
[[package]]
name = "aws-sdk-ec2"
version = "1.274.0"
dependencies = [
 "aws-types",
]

[[package]]
name = "aws-sdk-ssm"
version = "1.134.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "00"
"#;

    #[test]
    fn the_vendored_sdk_crates_are_the_locked_versions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("read Cargo.lock");
        let problems = mismatches(&root, &lock).expect("read vendor/");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(root.join("vendor/aws-sdk-ec2/PRUNED.md").is_file(), "the check must see the copies");
    }

    #[test]
    fn a_bump_without_regenerating_names_the_command() {
        assert_eq!(mismatch("aws-sdk-ec2", "1.274.0", &locked(LOCK, "aws-sdk-ec2")), None);
        let stale = mismatch("aws-sdk-ssm", "1.133.0", &locked(LOCK, "aws-sdk-ssm")).expect("a mismatch");
        assert!(stale.contains("1.134.0 from crates.io"), "{stale}");
        assert!(stale.contains("python3 tools/prune_aws_sdk.py aws-sdk-ssm"), "{stale}");
        assert!(mismatch("aws-sdk-sqs", "1.0.0", &locked(LOCK, "aws-sdk-sqs")).is_some());
    }

    #[test]
    fn reads_the_pruned_md_header() {
        let md = "# x\n\n- upstream: aws-sdk-ec2 1.274.0\n- upstream .crate sha256: ab\n";
        assert_eq!(pruned_upstream(md), Some(("aws-sdk-ec2".into(), "1.274.0".into())));
        assert_eq!(pruned_upstream("nothing"), None);
    }
}
