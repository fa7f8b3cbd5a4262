//! The booted-node test's machine image: a Debian bookworm root file system made with
//! `mmdebstrap`, standing in for Amazon Linux 2023 (see tests/e2e/boot.rs for what
//! differs and why). Built once and cached, keyed by everything that goes into it, so a
//! rerun of CI boots in seconds; each node boots an overlay of it, so the cache stays
//! as built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::Digest;

/// Debian packages: systemd 252 and cloud-init 22.4 (AL2023's versions), what the user
/// data calls (curl, lsblk from util-linux, mkfs.xfs, mountpoint, useradd) and pip, to
/// install the Python packages below.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "cloud-init",
    "locales",
    "iproute2",
    "procps",
    "curl",
    "ca-certificates",
    "xfsprogs",
    "python3",
    "python3-pip",
    "python3-venv",
];

/// From .ci/requirements.lock (the versions and hashes CI pins): the AWS CLI and its
/// dependencies, into a virtual environment linked as /usr/bin/aws, where AL2023 has its
/// own; and pyarrow and pandas into the system Python, what `pip install pandas pyarrow`
/// in `setup_commands` does on AL2023 (the container has no internet to run it at boot).
const AWS_CLI: &[&str] =
    &["awscli", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3", "docutils", "pyyaml", "colorama", "rsa", "pyasn1"];
const PYTHON_STEP: &[&str] = &["pyarrow", "pandas", "numpy", "python-dateutil", "six"];
const LOCK: &str = include_str!("../../.ci/requirements.lock");

/// Bump when the recipe below changes in a way the key does not see.
const RECIPE: &str = "boot-image 2";

/// Why this machine cannot boot a node, if it cannot (the test then says so and skips).
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    if uid != "0" {
        return Some("not root (systemd-nspawn, network namespaces and loop devices need it)".into());
    }
    for tool in ["systemd-nspawn", "mmdebstrap", "ip", "losetup", "nsenter"] {
        if !Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success()) {
            return Some(format!("`{tool}` is missing: apt-get install systemd-container mmdebstrap iproute2 util-linux (.ci/run does)"));
        }
    }
    None
}

/// The lock's entries (requirement line and hash lines) for `names`, for pip's
/// `--require-hashes --no-deps`.
fn lock_subset(names: &[&str]) -> String {
    let mut out = String::new();
    let mut keep = false;
    for line in LOCK.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') {
            let name = line.split("==").next().unwrap_or_default().to_lowercase();
            keep = names.contains(&name.as_str());
        } else if line.starts_with('#') {
            keep = false;
        }
        if keep && !line.trim_start().starts_with('#') {
            out.push_str(line);
            out.push('\n');
        }
    }
    for name in names {
        assert!(out.contains(&format!("\n{name}==")) || out.starts_with(&format!("{name}==")), "{name} is not in .ci/requirements.lock");
    }
    out
}

fn cache_root() -> PathBuf {
    let shared = Path::new("/work/.cache");
    let base = if shared.is_dir() { shared.to_path_buf() } else { std::env::temp_dir() };
    base.join("fleetform-boot-image")
}

/// The cached root file system, built first when absent (about a minute).
pub fn image() -> PathBuf {
    let (aws, python) = (lock_subset(AWS_CLI), lock_subset(PYTHON_STEP));
    let key = hex::encode(&sha2::Sha256::digest(format!("{RECIPE}\n{}\n{aws}\n{python}", PACKAGES.join(",")))[..8]);
    let root = cache_root().join(key);
    if root.join("etc/os-release").exists() {
        println!("boot image: cached at {}", root.display());
        return root;
    }
    std::fs::create_dir_all(cache_root()).unwrap();
    let building = cache_root().join(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).unwrap();
    let inputs = building.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::write(inputs.join("aws.lock"), aws).unwrap();
    std::fs::write(inputs.join("python.lock"), python).unwrap();
    // The host's CA bundle: a machine behind a TLS-inspecting proxy reaches PyPI only
    // with it, and the chroot's own bundle lacks the proxy's CA.
    std::fs::copy("/etc/ssl/certs/ca-certificates.crt", inputs.join("ca.crt")).unwrap();
    // pip in the chroot runs with a clean environment: the host's REQUESTS_CA_BUNDLE and
    // the like name files of the host, which the chroot does not have.
    let pip = "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot \"$1\"";
    let pip_flags = "--quiet --disable-pip-version-check --no-cache-dir --cert /tmp/in/ca.crt --require-hashes --no-deps";
    let hooks = [
        format!("mkdir -p \"$1/tmp/in\" && cp {0}/aws.lock {0}/python.lock {0}/ca.crt \"$1/tmp/in/\"", inputs.display()),
        format!("{pip} python3 -m venv /opt/aws-cli && {pip} /opt/aws-cli/bin/pip install {pip_flags} -r /tmp/in/aws.lock"),
        "ln -s /opt/aws-cli/bin/aws \"$1/usr/bin/aws\"".to_string(),
        format!("{pip} python3 -m pip install {pip_flags} --break-system-packages -r /tmp/in/python.lock"),
        "rm -rf \"$1/tmp/in\"".to_string(),
        // cloud-init sets LANG=en_US.UTF-8, which AL2023 has; Debian generates it on demand.
        "echo 'en_US.UTF-8 UTF-8' > \"$1/etc/locale.gen\" && chroot \"$1\" locale-gen".to_string(),
    ];
    let target = building.join("root");
    let mut c = Command::new("mmdebstrap");
    c.args(["--variant=apt", &format!("--include={}", PACKAGES.join(","))]);
    for hook in &hooks {
        c.arg(format!("--customize-hook={hook}"));
    }
    c.arg("bookworm").arg(&target);
    let started = Instant::now();
    let out = c.output().expect("running mmdebstrap");
    assert!(
        out.status.success(),
        "mmdebstrap failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    // Atomic: a run killed while building leaves only its own building-<pid> behind.
    if std::fs::rename(&target, &root).is_err() {
        assert!(root.join("etc/os-release").exists(), "cannot move {} to {}", target.display(), root.display());
    }
    let _ = std::fs::remove_dir_all(&building);
    println!("boot image: built {} in {:.0} s", root.display(), started.elapsed().as_secs_f64());
    root
}

/// A node's root: an overlay of the image (its changes in `dir/upper`), mounted at
/// `dir/root` until dropped.
pub struct Overlay {
    pub root: PathBuf,
}

impl Overlay {
    pub fn mount(image: &Path, dir: &Path) -> Overlay {
        let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("root"));
        for d in [&upper, &work, &root] {
            std::fs::create_dir_all(d).unwrap();
        }
        let options = format!("lowerdir={},upperdir={},workdir={}", image.display(), upper.display(), work.display());
        let out = Command::new("mount").args(["-t", "overlay", "overlay", "-o", &options]).arg(&root).output().unwrap();
        assert!(out.status.success(), "mount -t overlay: {}", String::from_utf8_lossy(&out.stderr));
        Overlay { root }
    }

    /// Write `text` at `path` inside the node's root (as the AMI or the test puts it).
    pub fn write(&self, path: &str, text: &str, mode: u32) {
        let file = self.root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).unwrap_or_default()
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.root).status();
    }
}
