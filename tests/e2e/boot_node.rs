//! One booted node of tests/e2e/boot.rs: `systemd-nspawn --boot` of an overlay of the
//! image, in the test's network namespace, with cloud-init's NoCloud seed holding the
//! user data. The test looks at it from outside: files in its root, and commands run
//! inside with `nsenter` (systemctl, journalctl), as an operator on the instance would.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::boot_image::Overlay;

pub struct Node {
    pub name: String,
    pub overlay: Overlay,
    netns: std::path::PathBuf,
    binds: Vec<String>,
    console: std::path::PathBuf,
    nspawn: Option<Child>,
    pub booted_at: Instant,
}

/// What the test sets in the node's root before its first boot: each a substitute for
/// what EC2 provides and the container cannot (see tests/e2e/boot.rs).
pub struct Seed<'a> {
    pub instance_id: &'a str,
    pub user_data: &'a str,
    /// AWS_ENDPOINT_URL for every service and login on the node (moto).
    pub aws_endpoint: &'a str,
}

impl Node {
    pub fn new(name: &str, overlay: Overlay, netns: &Path, dir: &Path, seed: &Seed<'_>) -> Node {
        // cloud-init's NoCloud data source: the user data as EC2 would serve it, and the
        // instance id, which keeps `runcmd` to the first boot as on EC2.
        overlay.write("/var/lib/cloud/seed/nocloud/user-data", seed.user_data, 0o600);
        overlay.write("/var/lib/cloud/seed/nocloud/meta-data", &format!("instance-id: {}\nlocal-hostname: {name}\n", seed.instance_id), 0o600);
        // Only NoCloud (no probing for other clouds); the test's namespace is the network
        // as it is: cloud-init must not rewrite it.
        overlay.write("/etc/cloud/cloud.cfg.d/99-fleetform-boot-test.cfg", "datasource_list: [NoCloud]\nnetwork: {config: disabled}\n", 0o644);
        let env = format!("AWS_ENDPOINT_URL={}\n", seed.aws_endpoint);
        overlay.write("/etc/systemd/system.conf.d/fleetform-boot-test.conf", &format!("[Manager]\nDefaultEnvironment={}", env), 0o644);
        overlay.write("/etc/environment", &env, 0o644);
        overlay.write("/etc/hostname", &format!("{name}\n"), 0o644);
        Node {
            name: name.to_string(),
            overlay,
            netns: netns.to_path_buf(),
            binds: Vec::new(),
            console: dir.join(format!("{name}-console.log")),
            nspawn: None,
            booted_at: Instant::now(),
        }
    }

    /// A host device or path the container sees at the same place (`--bind`).
    pub fn bind(&mut self, path: &str) {
        self.binds.push(path.to_string());
    }

    /// Boots the container (returns at once; the boot goes on inside).
    pub fn boot(&mut self) {
        let console = std::fs::OpenOptions::new().create(true).append(true).open(&self.console).unwrap();
        let mut c = Command::new("systemd-nspawn");
        c.arg("-D").arg(&self.overlay.root).args([
            // No system bus on the host to register with; run in this process's cgroup.
            "--register=no",
            "--keep-unit",
            "--boot",
            "--console=read-only",
            &format!("--machine={}", self.name),
        ]);
        c.arg(format!("--network-namespace-path={}", self.netns.display()));
        for b in &self.binds {
            c.arg(format!("--bind={b}"));
        }
        c.stdin(Stdio::null()).stdout(Stdio::from(console.try_clone().unwrap())).stderr(Stdio::from(console));
        self.booted_at = Instant::now();
        self.nspawn = Some(c.spawn().expect("running systemd-nspawn"));
    }

    /// The container's PID 1 (systemd), as the host sees it.
    fn leader(&self) -> Option<u32> {
        let nspawn = self.nspawn.as_ref()?.id();
        let children = std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).ok()?;
        children.split_whitespace().filter_map(|p| p.parse().ok()).next()
    }

    /// `cmd` inside the container (all its namespaces), with its output.
    pub fn exec(&self, cmd: &str) -> Output {
        let leader = self.leader().unwrap_or_else(|| panic!("{} is not running:\n{}", self.name, self.console_tail()));
        Command::new("nsenter").args(["-t", &leader.to_string(), "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c", cmd]).output().unwrap()
    }

    /// `cmd` inside, its stdout; the command must succeed.
    pub fn sh(&self, cmd: &str) -> String {
        let out = self.exec(cmd);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{}: `{cmd}` failed: {text}{}", self.name, String::from_utf8_lossy(&out.stderr));
        text
    }

    /// Waits until `cmd` succeeds inside (every second), up to `limit`; panics with the
    /// node's state otherwise. Returns the time it took from this call.
    pub fn wait_for(&self, what: &str, cmd: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.leader().is_some() && self.exec(cmd).status.success() {
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "{}: {what} not within {limit:?}\n{}", self.name, self.diagnostics());
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// `systemctl reboot` inside; systemd-nspawn then exits with 133 (its "reboot"
    /// status), and the container boots again from the same root, as an instance does.
    pub fn reboot(&mut self) {
        let _ = self.exec("systemctl reboot");
        let mut child = self.nspawn.take().expect("running");
        let status = wait_child(&mut child, Duration::from_secs(120)).unwrap_or_else(|| panic!("{} did not shut down for the reboot", self.name));
        assert_eq!(status.code(), Some(133), "{}: systemd-nspawn exit on reboot:\n{}", self.name, self.console_tail());
        self.boot();
    }

    pub fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// What an operator would look at: units, the install log, the agent's journal.
    pub fn diagnostics(&self) -> String {
        let run = |cmd: &str| match self.leader() {
            Some(_) => {
                let o = self.exec(cmd);
                format!("$ {cmd}\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
            }
            None => String::new(),
        };
        [
            format!("--- console:\n{}", self.console_tail()),
            format!("--- /var/log/fleetform-install.log:\n{}", self.overlay.read("/var/log/fleetform-install.log")),
            run("systemctl --no-pager list-units --failed 'fleetform*' 'cloud*'"),
            run("journalctl --no-pager -n 80 -u 'fleetform*' -u cloud-final"),
        ]
        .join("\n")
    }

    /// Powers the container off (SIGTERM to systemd-nspawn asks its systemd to).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
            if wait_child(&mut child, Duration::from_secs(60)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loop device over a sparse file in `dir`: the node's "instance-store NVMe" (the
/// container has none), detached when dropped.
pub struct LoopDevice {
    pub device: String,
}

impl LoopDevice {
    pub fn new(dir: &Path, bytes: u64) -> LoopDevice {
        let file = dir.join("nvme.img");
        std::fs::File::create(&file).unwrap().set_len(bytes).unwrap();
        let out = Command::new("losetup").args(["-f", "--show"]).arg(&file).output().unwrap();
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        LoopDevice { device: String::from_utf8_lossy(&out.stdout).trim().to_string() }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}
