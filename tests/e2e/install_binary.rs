//! The node install script (`node-agent/packaging/install-binary.sh`, as the user data
//! ships it: comments stripped) run for real: bash, the AWS CLI (`aws` on PATH;
//! `.ci/requirements.in` installs it) and moto's S3.
//! Why not a unit test: what matters is the conditional writes through the CLI, the
//! polling and the takeover between processes that race. The cargo build is replaced
//! by the script's test hook, FLEETFORM_TEST_BUILD_COMMAND: a script that sleeps, then
//! writes a file naming the node that "built" it and records the build in a log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fleetform::aws::resources::user_data::{without_comments, INSTALL_BINARY_SCRIPT};

use crate::moto::Moto;

const BUCKET: &str = "fleetform-install";
const STORE: &str = "s3://fleetform-install/cluster";

/// Stands in for `cargo build`: sleeps BUILD_SECONDS, writes the "binary", logs the build.
const FAKE_BUILD: &str = r#"#!/bin/bash
set -eu
sleep "$BUILD_SECONDS"
printf 'fleetform-agent for %s built by %s\n' "$ARCH" "$NODE_ID" > "$1"
echo "$ARCH $NODE_ID" >> "$BUILDS_LOG"
"#;

/// An AWS CLI that predates conditional writes (AWS CLI v2 before 2.17.34): it rejects
/// the options as the real one does, and passes everything else to the real CLI.
const OLD_CLI: &str = r#"#!/bin/bash
for a in "$@"; do
  case "$a" in --if-none-match|--if-match) echo "Unknown options: $a, *" >&2; exit 252 ;; esac
done
exec "$REAL_AWS" "$@"
"#;

/// The command of one node installing fleetform-agent for `arch` from `store` into
/// `dir/<id>.bin`, its output to `dir/<id>.log`, with the fake build (12 s) and short
/// lock timings: polls and refreshes every second, stale after 10 s. Each refresh is an
/// `aws` run, a few seconds on a loaded machine: 10 s leaves room for that.
pub(crate) fn node_command(moto: &Moto, dir: &Path, store: &str, id: &str, arch: &str) -> Command {
    let script = dir.join("install-binary.sh");
    if !script.exists() {
        std::fs::write(&script, without_comments(INSTALL_BINARY_SCRIPT)).unwrap();
        std::fs::write(dir.join("build.sh"), FAKE_BUILD).unwrap();
    }
    let log = std::fs::File::create(dir.join(format!("{id}.log"))).unwrap();
    let mut c = Command::new("bash");
    c.arg(script).args(["fleetform-agent", "fleetform-agent"]).arg(dir.join(format!("{id}.bin")));
    moto.configure(&mut c);
    c.env("STORE", store)
        .env("NODE_ID", id)
        .env("ARCH", arch)
        .env("POLL", "1")
        .env("LOCK_REFRESH", "1")
        .env("LOCK_STALE", "10")
        .env("BUILD_SECONDS", "12")
        .env("BUILDS_LOG", dir.join("builds"))
        .env("FLEETFORM_TEST_BUILD_COMMAND", format!("bash {}", dir.join("build.sh").display()))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    c
}

struct Bench {
    moto: Moto,
    dir: tempfile::TempDir,
}

pub(crate) fn real_aws() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("aws"))
        .find(|p| p.is_file())
        .expect("the AWS CLI (`aws`) is not on PATH, and the install script test needs it: pip install awscli (.ci/run installs it)")
}

impl Bench {
    fn new() -> Bench {
        let bench = Bench { moto: Moto::start(), dir: tempfile::tempdir().unwrap() };
        let made =
            bench.aws(&["s3api", "create-bucket", "--bucket", BUCKET, "--create-bucket-configuration", "LocationConstraint=us-west-2"]);
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        bench
    }

    fn aws(&self, args: &[&str]) -> Output {
        let mut c = Command::new(real_aws());
        c.args(args);
        self.moto.configure(&mut c);
        c.output().expect("running aws")
    }

    fn text(&self, args: &[&str]) -> String {
        let out = self.aws(args);
        assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Start the install script as node `id` of `arch`, installing to `<id>.bin`.
    fn node(&self, id: &str, arch: &str, env: &[(&str, &str)]) -> Child {
        let mut c = node_command(&self.moto, self.dir.path(), STORE, id, arch);
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().expect("running bash")
    }

    /// Wait for node `id`; returns its install log, asserting it succeeded.
    fn finish(&self, id: &str, mut child: Child) -> String {
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(self.dir.path().join(format!("{id}.log"))).unwrap();
        println!("--- node {id} ({status}):\n{log}");
        assert!(status.success(), "node {id} failed: {log}");
        log
    }

    fn installed(&self, id: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(format!("{id}.bin"))).unwrap()
    }

    /// Builds so far, as "<arch> <node>" lines.
    fn builds(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("builds")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn published(&self, arch: &str) -> Vec<u8> {
        let path = self.dir.path().join(format!("published-{arch}"));
        self.text(&["s3", "cp", &format!("{STORE}/bin/{arch}/fleetform-agent"), path.to_str().unwrap()]);
        std::fs::read(path).unwrap()
    }

    fn keys(&self) -> Vec<String> {
        self.text(&["s3api", "list-objects-v2", "--bucket", BUCKET, "--query", "Contents[].Key", "--output", "text"])
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn install_binary_one_build_per_architecture_then_downloads() {
    let b = Bench::new();
    // Two nodes boot together. The build (12 s) outlasts LOCK_STALE (10 s): only the
    // builder's refreshes keep the waiter from taking the lock over.
    let (a, c) = (b.node("node-a", "aarch64", &[]), b.node("node-b", "aarch64", &[]));
    let (log_a, log_b) = (b.finish("node-a", a), b.finish("node-b", c));
    let builds = b.builds();
    assert_eq!(builds.len(), 1, "exactly one node builds: {builds:?}");
    let (builder, waiter_log) = if builds[0] == "aarch64 node-a" { ("node-a", &log_b) } else { ("node-b", &log_a) };
    assert!(waiter_log.contains(&format!("for {builder} to publish {STORE}/bin/aarch64/fleetform-agent")), "{waiter_log}");
    let published = b.published("aarch64");
    assert_eq!(published, format!("fleetform-agent for aarch64 built by {builder}\n").into_bytes());
    assert_eq!(b.installed("node-a"), published, "same bytes on both nodes");
    assert_eq!(b.installed("node-b"), published);
    // The sha256 beside it, with who built it from which source (what `plan` reports).
    let key = "cluster/bin/aarch64/fleetform-agent.sha256";
    assert_eq!(b.text(&["s3", "cp", &format!("s3://{BUCKET}/{key}"), "-"]), sha256_hex(&published));
    let meta = b.text(&[
        "s3api",
        "head-object",
        "--bucket",
        BUCKET,
        "--key",
        key,
        "--query",
        "Metadata.\"fleetform-built-by\"",
        "--output",
        "text",
    ]);
    assert_eq!(meta, builder);
    assert!(!b.keys().iter().any(|k| k.ends_with(".lock")), "the lock is released: {:?}", b.keys());

    // A node that boots later downloads without building.
    let log_c = b.finish("node-c", b.node("node-c", "aarch64", &[]));
    assert_eq!(b.builds().len(), 1, "no second build: {:?}", b.builds());
    assert!(log_c.contains("installed ") && !log_c.contains("building"), "{log_c}");
    assert_eq!(b.installed("node-c"), published);
}

#[test]
fn install_binary_takes_over_a_stale_lock_once() {
    let b = Bench::new();
    // A builder that died: its lock stays, never refreshed.
    let lock = b.dir.path().join("dead.lock");
    std::fs::write(&lock, "dead-node\n").unwrap();
    let key = "cluster/bin/x86_64/fleetform-agent.lock";
    let started = Instant::now();
    b.text(&["s3api", "put-object", "--bucket", BUCKET, "--key", key, "--body", lock.to_str().unwrap(), "--metadata", "holder=dead-node"]);
    let env = [("BUILD_SECONDS", "2")];
    let (d, e) = (b.node("node-d", "x86_64", &env), b.node("node-e", "x86_64", &env));
    let (log_d, log_e) = (b.finish("node-d", d), b.finish("node-e", e));
    // The takeover waits until the lock is LOCK_STALE (10 s) old; then the build (2 s).
    assert!(started.elapsed() >= Duration::from_secs(12), "nobody took the lock before LOCK_STALE: {:?}", started.elapsed());
    let builds = b.builds();
    assert_eq!(builds.len(), 1, "two waiters, one takeover: {builds:?}");
    let builder_log = if builds[0] == "x86_64 node-d" { &log_d } else { &log_e };
    assert!(builder_log.contains("the lock of dead-node is stale") && builder_log.contains("taking it over"), "{builder_log}");
    let published = b.published("x86_64");
    assert_eq!(b.installed("node-d"), published);
    assert_eq!(b.installed("node-e"), published);
    assert!(!b.keys().iter().any(|k| k.ends_with(".lock")), "{:?}", b.keys());
}

#[test]
fn install_binary_without_conditional_writes_builds_and_publishes() {
    let b = Bench::new();
    let bin = b.dir.path().join("old-cli");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("aws"), OLD_CLI).unwrap();
    std::fs::set_permissions(bin.join("aws"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let real = real_aws().display().to_string();
    let log = b.finish("node-f", b.node("node-f", "aarch64", &[("PATH", &path), ("REAL_AWS", &real), ("BUILD_SECONDS", "1")]));
    assert!(log.contains("has no conditional writes: building without a lock"), "{log}");
    assert_eq!(b.builds(), ["aarch64 node-f"]);
    assert_eq!(b.installed("node-f"), b.published("aarch64"));
    assert!(!b.keys().iter().any(|k| k.ends_with(".lock")), "{:?}", b.keys());
}
