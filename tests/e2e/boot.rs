//! A node boots for real (moto launches nothing that runs): the user data `fleetform apply`
//! renders runs under real cloud-init and systemd, in a container, and the test watches it
//! from outside as an operator would. Needs more than a unit test: nothing else runs the
//! user data, the units and their hardening, install-binary.sh and the agent together.
//!
//! The flow: `fleetform apply` against moto with the real `fleetform` and
//! `fleetform-agent` binaries (the store has them); the user data of the worker and of
//! the head is taken from their launch templates (DescribeLaunchTemplateVersions) and
//! each boots in `systemd-nspawn --boot`, in a network namespace of the test's own where
//! 169.254.169.254 answers as IMDS (testkit's emulator: instance identity, the instance
//! profile's credentials, spot notices) and moto is the AWS endpoint. Then, seen from
//! outside: cloud-init ran the user data; the `fleetform` user and the units exist;
//! install-binary.sh installed the binary from the store; the agent runs under its
//! shipped unit, hardening unchanged, and reported ready (its heartbeat in the store);
//! it runs a job's tasks (a native step and a `python` step) submitted with `fleetform
//! submit` through SQS; it drains on a spot notice within the two minutes; after a
//! reboot of the container it comes back with its spill directory on the (substitute)
//! instance-store NVMe, and runs a job again; after a stop and start, on blank devices,
//! the spill file system is made again; the head's reconcile unit starts and completes
//! rounds.
//!
//! What the test substitutes for Amazon Linux 2023 on EC2, and why:
//! - **Debian bookworm** (`mmdebstrap`, boot_image.rs) for AL2023: it is what can be
//!   built here, offline from Amazon's repositories, in about a minute. Both run systemd
//!   252; cloud-init is 22.4 (AL2023: 22.2). The user data calls no package manager on
//!   a worker without `setup_commands` that use one (dnf only for mdadm, with more than
//!   one NVMe device, and for the source build, neither reached here).
//! - **The AWS CLI**: v1 (1.46 from PyPI, pinned by .ci/requirements.lock, in a virtual
//!   environment linked as /usr/bin/aws, where AL2023's v2 is) for AL2023's v2. Debian's
//!   own `awscli` (2.9.19) predates `AWS_ENDPOINT_URL` (2.13), so it could not be pointed
//!   at moto. Both make the same S3 calls through botocore; v1's `put-object` has the
//!   conditional-write options install-binary.sh probes for. v1 reads the region only
//!   from `AWS_DEFAULT_REGION` (install.sh exports it beside `AWS_REGION`).
//! - **pyarrow and pandas** are in the image (pip, from the same lock), where AL2023 gets
//!   them from `setup_commands` (`dnf install -y python3-pip` then `pip3 install pandas
//!   pyarrow`): the container has no internet. The test's `setup_commands` checks that
//!   they import, so setup.sh still runs before the agent as on EC2.
//! - **cloud-init's data source**: NoCloud, its seed written into the root file system,
//!   instead of EC2's. The EC2 data source crawls the versioned metadata tree
//!   (`/2021-03-23/meta-data/...`), which the emulator does not serve; the user data's
//!   bytes are the same either way, and everything fleetform itself reads from IMDS
//!   (token, instance id, credentials, notices) is read from the emulator.
//! - **The AWS endpoint**: `AWS_ENDPOINT_URL` for every unit (a systemd
//!   `DefaultEnvironment` drop-in) and login (/etc/environment), written by the test; on
//!   EC2 the SDKs find the regional endpoints themselves.
//! - **Instance-store NVMe**: a loop device over a sparse file, bound into the container,
//!   and an `lsblk` in /usr/local/sbin that reports it with EC2's NVMe model name
//!   ("Amazon EC2 NVMe Instance Storage"), which only EC2's hardware reports. The rest of
//!   spill-nvme.sh (blkid, mkfs.xfs, mount) runs as on EC2.
//! - **A spot reclaim** ends in no termination: the test sees the agent drain and stop
//!   (its last heartbeat), as EC2 would see it before reclaiming the instance.
//! - **A reboot** is `systemctl reboot` in the container: systemd-nspawn exits with 133,
//!   and the test boots the same root again (same instance id, so cloud-init's runcmd
//!   does not run again, as on EC2). **A stop and start** is a power-off, the loop
//!   device wiped (EC2 hands a started instance blank instance-store devices), a boot.
//!
//! Skips, loudly, only when the machine cannot boot a container (not root, no
//! systemd-nspawn or mmdebstrap); `.ci/run` installs the Debian packages as root.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::task::{Manifest, NodeHeartbeat};
use fleetform_testkit::imds::{ImdsEmulator, RoleCredentials, SPOT_NOTICE_LEAD};
use fleetform_testkit::netns::NetNs;

use crate::aws_reconcile::{live_instances, runtime};
use crate::boot_image::{self, Overlay};
use crate::boot_node::{LoopDevice, Node, Seed};
use crate::moto::{Moto, REGION};

const CLUSTER: &str = "boot";
const STORE: &str = "s3://fleetform-boot-data/boot";
const DATASETS: &str = "fleetform-boot-datasets";
const WORKER: &str = "x86_worker_node";
const ROWS: usize = 3000;

/// A head and one x86 worker type with instance-store NVMe (m6id), setup_commands that
/// check the python step's modules, job data outside the store, and no idle scale-down
/// while the test uses the worker.
fn spec_yaml() -> String {
    format!(
        r#"cluster_name: {CLUSTER}
provider: {{type: aws, region: {REGION}, availability_zones: [us-west-2a]}}
network:
  vpc_cidr: 10.0.0.0/16
  public_subnets: [10.0.0.0/24]
  private_subnets: [10.0.16.0/20]
storage:
  bucket: fleetform-boot-data
  prefix: boot/
  job_inputs: [s3://{DATASETS}/raw/]
  job_outputs: [s3://{DATASETS}/clean/]
idle_timeout_minutes: 60
max_workers: 2
head_node_type: head
setup_commands:
  - python3 -c 'import pyarrow, pandas'
available_node_types:
  head:
    resources: {{CPU: 0}}
    node_config: {{instance_types: [m7i.xlarge], market: on-demand, image: al2023}}
  {WORKER}:
    resources: {{CPU: 2, Intel: 1}}
    min_workers: 1
    max_workers: 1
    node_config: {{instance_types: [m6id.2xlarge], market: spot, image: al2023}}
"#
    )
}

/// A native step, then a `python` step (pyarrow) that keeps every row.
const JOB_PY: &str = "def keep(batch):\n    return batch\n";

fn job_yaml(name: &str) -> String {
    format!(
        "name: {name}\ninput: {{uri: 's3://{DATASETS}/raw/t.csv'}}\noutput: {{uri: 's3://{DATASETS}/clean/{name}', rows_per_file: 1000}}\n\
         batch_size: 500\nsplit: {{bytes_per_task: 20000, bytes_per_unit: 20000}}\n\
         steps:\n  - lowercase: {{column: text}}\n  - python: {{file: steps.py, function: keep, batch_format: pyarrow}}\n\
         resources: {{CPU: 1, Intel: 1}}\n"
    )
}

/// `fleetform` (this build) and `fleetform-agent` beside it.
fn binaries() -> (PathBuf, PathBuf) {
    let fleetform = PathBuf::from(env!("CARGO_BIN_EXE_fleetform"));
    let agent = fleetform.with_file_name("fleetform-agent");
    assert!(
        agent.is_file(),
        "{} is missing, and the booted node installs it from the store: `cargo build -p fleetform-agent` first (.ci/run does)",
        agent.display()
    );
    (fleetform, agent)
}

#[test]
fn boot_a_worker_and_the_head_from_their_user_data() {
    if let Some(why) = boot_image::unavailable() {
        eprintln!("\n*** SKIPPED boot_a_worker_and_the_head_from_their_user_data: {why} ***\n");
        return;
    }
    let t0 = Instant::now();
    let (fleetform, agent) = binaries();
    let image = boot_image::image();
    let dir = tempfile::Builder::new().prefix("fleetform-boot-").tempdir_in("/var/tmp").unwrap();
    let (wnet, hnet) = (NetNs::create("w", 0).unwrap(), NetNs::create("h", 1).unwrap());
    hnet.route_to(wnet.host_ip).unwrap();
    let moto = Moto::start_on(wnet.host_ip);
    let rt = runtime();
    let sdk = rt.block_on(moto.sdk_config());
    let spec = dir.path().join("cluster.yaml");
    std::fs::write(&spec, spec_yaml()).unwrap();
    apply(&moto, dir.path(), &spec, &fleetform, &agent);
    println!("[{:>5.1} s] applied", t0.elapsed().as_secs_f64());

    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let nodes = rt.block_on(live_instances(&ec2, CLUSTER));
    let id_of = |t: &str| nodes.iter().find(|n| n.1 == t).unwrap_or_else(|| panic!("no {t} instance: {nodes:?}")).0.clone();
    let (worker_id, head_id) = (id_of(WORKER), id_of("head"));
    let worker_ud = rt.block_on(user_data(&ec2, WORKER));
    let head_ud = rt.block_on(user_data(&ec2, "head"));

    let nvme = LoopDevice::new(dir.path(), 1 << 30);
    let worker_imds = imds(&wnet, &worker_id, "m6id.2xlarge", "worker", &worker_ud);
    let head_imds = imds(&hnet, &head_id, "m7i.xlarge", "head", &head_ud);
    let mut worker = node(&image, dir.path(), "worker", &wnet, &worker_id, &worker_ud, &moto);
    fake_instance_store(&mut worker, &nvme.device);
    let mut head = node(&image, dir.path(), "head", &hnet, &head_id, &head_ud, &moto);
    worker.boot();
    head.boot();

    let store = rt.block_on(Store::open_with(&sdk, STORE)).unwrap();
    worker_installs_and_reports_ready(&worker, &store, &rt, &agent, &worker_id);
    println!("[{:>5.1} s] worker ready", t0.elapsed().as_secs_f64());
    run_a_job(&moto, dir.path(), &spec, &store, &rt, &worker, "boot-job-1");
    println!("[{:>5.1} s] job ran on the worker", t0.elapsed().as_secs_f64());
    drains_on_a_spot_notice(&worker_imds, &store, &rt, &worker_id);
    println!("[{:>5.1} s] drained on the spot notice", t0.elapsed().as_secs_f64());
    worker_imds.reset();
    comes_back_after_a_reboot(&mut worker, &store, &rt, &worker_id);
    println!("[{:>5.1} s] back after the reboot, spill on the NVMe mount", t0.elapsed().as_secs_f64());
    run_a_job(&moto, dir.path(), &spec, &store, &rt, &worker, "boot-job-2");
    println!("[{:>5.1} s] a job ran after the reboot", t0.elapsed().as_secs_f64());
    comes_back_on_blank_devices_after_a_stop_and_start(&mut worker, &nvme.device, &store, &rt, &worker_id);
    println!("[{:>5.1} s] back after a stop and start, spill on a new file system", t0.elapsed().as_secs_f64());
    head_completes_a_round(&head, &store, &rt);
    println!("[{:>5.1} s] the head completed a reconcile round", t0.elapsed().as_secs_f64());
    head.stop();
    worker.stop();
    drop((head_imds, worker_imds));
}

fn apply(moto: &Moto, dir: &Path, spec: &Path, fleetform: &Path, agent: &Path) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("node-agent")).unwrap();
    std::fs::write(src.join("Cargo.toml"), "[workspace]\nmembers = [\"node-agent\"]\n").unwrap();
    let mut c = moto.fleetform(&["apply", "--yes", "-f", spec.to_str().unwrap()]);
    c.arg("--agent-binary").arg(format!("x86_64={}", agent.display()));
    c.arg("--fleetform-binary").arg(format!("x86_64={}", fleetform.display()));
    c.env("FLEETFORM_SOURCE_DIR", &src).current_dir(dir);
    let out = c.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("$ fleetform apply --yes ...\n{text}");
    assert!(out.status.success(), "apply failed: {text}");
}

/// The user data of `node_type`'s launch template, as EC2 hands it to cloud-init.
async fn user_data(ec2: &aws_sdk_ec2::Client, node_type: &str) -> String {
    let name = format!("fleetform-{CLUSTER}-{node_type}");
    let out = ec2.describe_launch_template_versions().launch_template_name(&name).versions("$Latest").send().await.unwrap();
    let encoded = out.launch_template_versions()[0].launch_template_data().and_then(|d| d.user_data()).unwrap_or_else(|| panic!("{name} has no user data"));
    String::from_utf8(aws_smithy_types::base64::decode(encoded).unwrap()).unwrap()
}

/// The node's IMDS at 169.254.169.254:80 inside its namespace, with its role's
/// credentials (any key works on moto; the SDKs must find them there, as on EC2).
fn imds(net: &NetNs, id: &str, instance_type: &str, role: &str, user_data: &str) -> ImdsEmulator {
    let listener = net.bind_inside(std::net::Ipv4Addr::new(169, 254, 169, 254), 80).unwrap();
    let imds = ImdsEmulator::serve_on(listener, id, instance_type, &format!("{REGION}a")).unwrap();
    let credentials = RoleCredentials { access_key_id: "testing".into(), secret_access_key: "testing".into(), token: format!("session-of-{role}") };
    imds.set_role_credentials(&format!("fleetform-{CLUSTER}-{role}"), credentials);
    imds.set_user_data(user_data);
    imds
}

fn node(image: &Path, dir: &Path, name: &str, net: &NetNs, id: &str, user_data: &str, moto: &Moto) -> Node {
    let node_dir = dir.join(name);
    let overlay = Overlay::mount(image, &node_dir);
    Node::new(name, overlay, &net.path(), dir, &Seed { instance_id: id, user_data, aws_endpoint: &moto.endpoint })
}

/// The loop device as the node's instance store (see the module doc).
fn fake_instance_store(node: &mut Node, device: &str) {
    node.bind(device);
    let lsblk = format!(
        "#!/bin/sh\n# tests/e2e/boot.rs: the container's stand-in for EC2's instance-store NVMe.\n\
         if [ \"$*\" = \"-dpno NAME,MODEL\" ]; then echo '{device} Amazon EC2 NVMe Instance Storage'; exit 0; fi\n\
         exec /usr/bin/lsblk \"$@\"\n"
    );
    node.overlay.write("/usr/local/sbin/lsblk", &lsblk, 0o755);
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Polls `check` every second up to `limit`; panics with `what` and the node's state.
fn wait_until<T>(node: &Node, what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}\n{}", node.diagnostics());
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn heartbeat(store: &Store, rt: &tokio::runtime::Runtime, id: &str) -> Option<NodeHeartbeat> {
    rt.block_on(store.get_json::<NodeHeartbeat>(&layout::node(id))).ok().flatten()
}

fn worker_installs_and_reports_ready(node: &Node, store: &Store, rt: &tokio::runtime::Runtime, agent: &Path, id: &str) {
    let took = node.wait_for("cloud-init's final stage", "test -f /var/lib/cloud/instance/boot-finished", Duration::from_secs(300));
    println!("worker: cloud-init finished {:.0} s after boot", took.as_secs_f64());
    let status = node.sh("cloud-init status --long || true");
    println!("$ cloud-init status --long\n{status}");
    assert!(status.contains("status: done"), "cloud-init: {status}\n{}", node.diagnostics());
    assert!(node.sh("id fleetform").contains("(fleetform)"));
    let log = node.overlay.read("/var/log/fleetform-install.log");
    println!("--- worker /var/log/fleetform-install.log:\n{log}");
    assert!(log.contains(&format!("installed /usr/local/bin/fleetform-agent from {STORE}/bin/x86_64/fleetform-agent")), "{log}");
    assert_eq!(sha256_file(&node.overlay.root.join("usr/local/bin/fleetform-agent")), sha256_file(agent), "the store's binary");
    // The unit as shipped: its hardening is what runs here.
    let shipped = include_str!("../../node-agent/packaging/fleetform-agent.service");
    assert_eq!(node.overlay.read("/etc/systemd/system/fleetform-agent.service").trim_end(), shipped.trim_end());
    let (_, took) = wait_until(node, "the agent's readiness", Duration::from_secs(120), || {
        node.exec("systemctl is-active --quiet fleetform-agent").status.success().then_some(())
    });
    println!("worker: fleetform-agent active (Type=notify: READY=1 received) {:.0} s later", took.as_secs_f64());
    let (beat, _) = wait_until(node, "the agent's heartbeat in the store", Duration::from_secs(60), || heartbeat(store, rt, id));
    assert!(!beat.stopped && beat.draining.is_none(), "{beat:?}");
    let env = node.overlay.read("/etc/fleetform/agent.env");
    assert!(env.contains(&format!("FLEETFORM_NODE_ID={id}\n")) && env.contains("FLEETFORM_SPILL_DIR=/mnt/fleetform-nvme/spill\n"), "{env}");
    println!("$ systemctl show fleetform-agent (worker)\n{}", node.sh("systemctl show fleetform-agent -p Type -p User -p ProtectSystem -p PrivateUsers -p SystemCallFilter -p RestrictAddressFamilies -p CapabilityBoundingSet -p MainPID | cut -c1-160"));
    println!("$ findmnt /mnt/fleetform-nvme (worker)\n{}", node.sh("findmnt -n /mnt/fleetform-nvme"));
}

fn run_a_job(moto: &Moto, dir: &Path, spec: &Path, store: &Store, rt: &tokio::runtime::Runtime, node: &Node, name: &str) {
    rt.block_on(put_input(moto));
    std::fs::write(dir.join("steps.py"), JOB_PY).unwrap();
    let job = dir.join(format!("{name}.yaml"));
    std::fs::write(&job, job_yaml(name)).unwrap();
    let mut c = moto.fleetform(&["submit", job.to_str().unwrap(), "-f", spec.to_str().unwrap()]);
    let out = c.current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("$ fleetform submit {name}.yaml\n{text}");
    assert!(out.status.success(), "{text}");
    let job_id = text.lines().next().unwrap().trim().to_string();
    let (manifest, took) = wait_until(node, &format!("job {job_id}'s _SUCCESS"), Duration::from_secs(180), || {
        rt.block_on(store.get_json::<Manifest>(&layout::success(&job_id))).ok().flatten()
    });
    println!("job {job_id}: {} rows in {} tasks, {} failed, {:.0} s after submit", manifest.total_rows, manifest.tasks, manifest.failed_tasks.len(), took.as_secs_f64());
    assert_eq!((manifest.total_rows, manifest.failed_tasks.len()), (ROWS as u64, 0), "{manifest:?}");
    // The python step ran on the node: the agent logs the worker's interpreter.
    let journal = node.sh("journalctl --no-pager -u fleetform-agent -b");
    assert!(journal.contains("pyarrow"), "no python worker in the agent's journal:\n{journal}");
}

/// The job's input: a CSV in the datasets bucket (made once).
async fn put_input(moto: &Moto) {
    use object_store::{ObjectStoreExt, PutPayload};
    let sdk = moto.sdk_config().await;
    create_datasets_bucket(moto);
    let data = fleetform_runtime::location::open_with(&sdk, &format!("s3://{DATASETS}")).await.unwrap();
    let csv: String = std::iter::once("id,text\n".to_string()).chain((0..ROWS).map(|i| format!("{i},Row {i} FROM S3\n"))).collect();
    data.store.put(&data.key("raw/t.csv"), PutPayload::from(csv.into_bytes())).await.unwrap();
}

/// Create the datasets bucket with a plain HTTP PUT (moto checks no signature; the
/// project has no S3 SDK client). Already there is fine.
fn create_datasets_bucket(moto: &Moto) {
    use std::io::{Read, Write};
    let host = moto.endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let body = format!("<CreateBucketConfiguration><LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>");
    write!(s, "PUT /{DATASETS} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200") || resp.contains("BucketAlreadyOwnedByYou"), "create bucket: {resp}");
}

fn drains_on_a_spot_notice(imds: &ImdsEmulator, store: &Store, rt: &tokio::runtime::Runtime, id: &str) {
    let noticed = Instant::now();
    imds.raise_spot_interruption(SPOT_NOTICE_LEAD);
    let deadline = noticed + SPOT_NOTICE_LEAD;
    loop {
        let beat = heartbeat(store, rt, id);
        if let Some(b) = beat.as_ref().filter(|b| b.stopped) {
            assert_eq!(b.draining.as_deref(), Some("spot-interruption"), "{b:?}");
            println!("worker: drained and stopped {:.1} s after the spot notice (EC2 gives {} s)", noticed.elapsed().as_secs_f64(), SPOT_NOTICE_LEAD.as_secs());
            return;
        }
        assert!(Instant::now() < deadline, "no drain within the notice's two minutes: {beat:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn comes_back_after_a_reboot(node: &mut Node, store: &Store, rt: &tokio::runtime::Runtime, id: &str) {
    let rebooted = Instant::now();
    let rebooted_at = chrono::Utc::now();
    node.reboot();
    // Only an agent started after the reboot counts: systemd restarts a drained agent
    // (Restart=always), so one may have started between the drain and the reboot.
    let (beat, _) = wait_until(node, "a new agent's heartbeat after the reboot", Duration::from_secs(180), || {
        heartbeat(store, rt, id).filter(|b| b.started_at > rebooted_at && !b.stopped)
    });
    println!("worker: agent back {:.0} s after `systemctl reboot` (started {})", rebooted.elapsed().as_secs_f64(), beat.started_at);
    println!("$ findmnt /mnt/fleetform-nvme (after the reboot)\n{}", node.sh("findmnt -n /mnt/fleetform-nvme"));
    assert_eq!(node.sh("stat -c %U /mnt/fleetform-nvme/spill").trim(), "fleetform");
    assert!(node.exec("systemctl is-active --quiet fleetform-spill fleetform-agent").status.success(), "{}", node.diagnostics());
    let installs = node.overlay.read("/var/log/fleetform-install.log").matches("installed /usr/local/bin/fleetform-agent").count();
    assert_eq!(installs, 1, "runcmd runs once per instance, not at a reboot");
}

/// A stop and start: the container powers off, its "instance store" is wiped (EC2 hands a
/// started instance blank instance-store devices), and it boots again.
fn comes_back_on_blank_devices_after_a_stop_and_start(node: &mut Node, device: &str, store: &Store, rt: &tokio::runtime::Runtime, id: &str) {
    node.stop();
    let wiped = std::process::Command::new("wipefs").args(["-a", device]).output().unwrap();
    assert!(wiped.status.success(), "wipefs: {}", String::from_utf8_lossy(&wiped.stderr));
    let started_at = chrono::Utc::now();
    node.boot();
    wait_until(node, "a new agent's heartbeat after the stop and start", Duration::from_secs(180), || {
        heartbeat(store, rt, id).filter(|b| b.started_at > started_at && !b.stopped)
    });
    let spill = node.sh("journalctl --no-pager -b -u fleetform-spill");
    assert!(spill.contains(&format!("making an XFS file system on {device}")), "{spill}");
    assert_eq!(node.sh("stat -c %U /mnt/fleetform-nvme/spill").trim(), "fleetform");
}

fn head_completes_a_round(node: &Node, store: &Store, rt: &tokio::runtime::Runtime) {
    node.wait_for("cloud-init's final stage", "test -f /var/lib/cloud/instance/boot-finished", Duration::from_secs(300));
    let log = node.overlay.read("/var/log/fleetform-install.log");
    assert!(log.contains(&format!("installed /usr/local/bin/fleetform from {STORE}/bin/x86_64/fleetform")), "{log}");
    let booted = chrono::Utc::now() - chrono::Duration::from_std(node.booted_at.elapsed()).unwrap();
    let (state, _) = wait_until(node, "a reconcile round in the store", Duration::from_secs(180), || {
        let state: serde_json::Value = rt.block_on(store.get_json(layout::autoscaler_state())).ok().flatten()?;
        let at: chrono::DateTime<chrono::Utc> = state["status"]["at"].as_str()?.parse().ok()?;
        (at > booted).then_some(state)
    });
    assert_eq!(state["failures"]["consecutive"], 0, "{state:#}");
    assert!(node.exec("systemctl is-active --quiet fleetform-reconcile").status.success(), "{}", node.diagnostics());
    println!("head: round at {}: {}", state["status"]["at"], state["status"]["latest_round"]);
    println!("$ journalctl -u fleetform-reconcile (head, last lines)\n{}", node.sh("journalctl --no-pager -u fleetform-reconcile -b -n 15"));
}
