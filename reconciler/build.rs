//! Puts the git commit into `fleetform --version` (FLEETFORM_VERSION), so a bug report
//! names the exact build. Outside a git checkout (a crates tarball) the version stands alone.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let full = match git(&["rev-parse", "--short=12", "HEAD"]) {
        // No "modified" mark: the script reruns only when HEAD moves, so it would go stale.
        Some(hash) => format!("{version} (git {hash})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=FLEETFORM_VERSION={full}");
    // Rebuild when HEAD moves (commit, checkout), not on every file edit.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
    }
}
