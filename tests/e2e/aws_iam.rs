//! Least privilege, proven on moto (docs/DESIGN.md, decision 21). With moto holding every
//! caller to its IAM policies, `fleetform reconcile` runs under the head role's credentials
//! (a steady pass, a pass that launches for queued demand, a pass that terminates an idle
//! node) and the agent under the worker role's, end to end on two jobs; every call they
//! make must be allowed, and calls outside each role must be denied. More than the policy
//! unit tests: this checks the calls fleetform really makes, as an IAM evaluator sees them.
//!
//! What moto 5.2.5 evaluates (moto/iam/access_control.py, moto/core/responses.py): the
//! IAM action of every call; the resource only for S3 (bucket and object ARNs), SQS calls
//! that carry a queue URL, iam calls naming a role, and sts:AssumeRole (EC2,
//! CloudFormation, SSM and the rest are authorized against `*`); no condition (it only
//! knows StringEquals, on request values it does not collect, and skips the others).
//! So beside each role's generated policy, put back unchanged, the test puts a
//! `moto-gaps` policy derived from it (`moto_gaps`), whose every rule is a place where
//! moto asks for something AWS does not; what that leaves unverified is in docs/aws.md.
//!
//! Then the conditions: tests/e2e/iam_eval.py turns every recorded call (moto's decision
//! log carries each request's parameters) into the request contexts AWS authorizes it
//! under (tags at launch as `ec2:CreateTags` with `ec2:CreateAction`, `iam:PassRole`,
//! `aws:RequestTag`/`aws:ResourceTag` with the resources' real tags, `s3:prefix`...), and
//! evaluates them against the deployed documents with principalmapper, an evaluator that
//! honours conditions. Every context must be allowed and a list of calls outside the
//! roles denied ("IAM evaluated as AWS does" in docs/aws.md).
//!
//! Set-up runs before enforcement starts, because moto cannot do three things with it on:
//! it checks signatures by re-encoding form bodies and gets CloudFormation's CreateStack
//! (a template with spaces) wrong, so apply would fail with SignatureDoesNotMatch; it
//! crashes (500) on sts:AssumeRole against a trust policy whose principal is a service
//! (`_check_principal` does `principal in None`), and only EC2 may assume these roles
//! anyway; and it stores the role policies CloudFormation made as dicts, which its policy
//! reader cannot read (`IAMPolicy`: KeyError 'policy_document', 500), so the documents
//! are put again with iam:PutRolePolicy (GetRolePolicy shows them as a Python repr).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::task::{Manifest, NodeHeartbeat};
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{json, Value};

use crate::aws_reconcile::{runtime, Fixture};
use crate::moto::{Credentials, Decision, Moto};

const CLUSTER: &str = "iam";
const STORE: &str = "s3://fleetform-iam-data/iam";
/// A bucket of job data outside the store: `raw/` is a job input, `clean/` a job output,
/// `private/` neither.
const DATASETS: &str = "fleetform-iam-datasets";
const ROWS: usize = 4000;

/// The workshop's shape (aws_reconcile::spec_yaml) with job data outside the store, nodes
/// idle after 3 s so that one reconcile pass can scale down, and the arm type
/// (`min_workers: 1`) on-demand, so that the head launches through RunInstances as well as
/// CreateFleet (spot): both launch paths are authorized differently.
fn spec_yaml() -> String {
    let spec = crate::aws_reconcile::spec_yaml(CLUSTER, 0).replace(
        "storage: {bucket: fleetform-iam-data, prefix: iam/}\n",
        &format!(
            "storage:\n  bucket: fleetform-iam-data\n  prefix: iam/\n  job_inputs: [s3://{DATASETS}/raw/]\n  \
             job_outputs: [s3://{DATASETS}/clean/]\nidle_timeout_minutes: 0.05\n"
        ),
    );
    let on_demand = spec.replace(
        "[r8g.2xlarge], market: spot",
        "[r8g.2xlarge], market: on-demand",
    );
    assert_ne!(
        on_demand, spec,
        "aws_reconcile::spec_yaml changed: the arm type is no longer spot r8g"
    );
    on_demand
}

/// A python step longer than a third of the agent's 6 s lease, so every task renews its
/// lease (sqs:ChangeMessageVisibility); and one that always fails (retry, dead letter).
const STEPS_PY: &str = "import time\n\ndef slow(batch):\n    time.sleep(2.5)\n    return batch\n\n\
                        def doomed(batch):\n    raise ValueError('this task fails on purpose')\n";

/// A job of `function` over `input`, in tasks of about `bytes` of it.
fn job_yaml(name: &str, input: &str, output: &str, function: &str, bytes: u64) -> String {
    format!(
        "name: {name}\ninput: {{uri: '{input}'}}\noutput: {{uri: '{output}', rows_per_file: 1000}}\nbatch_size: 1000\n\
         split: {{bytes_per_task: {bytes}, bytes_per_unit: {bytes}}}\n\
         steps:\n  - lowercase: {{column: text}}\n  - python: {{file: steps.py, function: {function}, batch_format: pyarrow}}\n\
         resources: {{CPU: 1, Intel: 1}}\nmax_failures: 2\n"
    )
}

/// `fleetform <args> -f SPEC` as `who`; (exit code, stdout + stderr), echoed.
fn fleetform(moto: &Moto, f: &Fixture, who: &Credentials, args: &[&str]) -> (i32, String) {
    let mut c = moto.fleetform(args);
    c.args(["-f", f.spec.to_str().unwrap()])
        .env("FLEETFORM_SOURCE_DIR", f.dir.path().join("src"))
        .current_dir(f.dir.path());
    moto.configure_as(&mut c, who);
    let out = c.output().expect("running fleetform");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "$ fleetform {}\n{text}[exit {}]\n",
        args.join(" "),
        out.status.code().unwrap_or(-1)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// What moto needs beyond a role's generated policy to authorize fleetform's calls as AWS
/// does. Each rule is a moto behaviour read in its source; each only repeats actions the
/// generated document grants, so an action moto allows is always one the role has.
fn moto_gaps(document: &Value) -> Value {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut on_star = BTreeSet::new();
    let mut statements = Vec::new();
    for st in document["Statement"].as_array().unwrap() {
        let resources = list(&st["Resource"]);
        for action in list(&st["Action"]) {
            let service = action.split(':').next().unwrap_or_default();
            match action.as_str() {
                // (1) moto knows no ARN for these services' calls and authorizes them
                // against `*`; (2) sqs:GetQueueUrl carries a queue name, and moto looks
                // for a queue URL to find the queue, else uses `*`.
                _ if !matches!(service, "s3" | "sqs") || action == "sqs:GetQueueUrl" => {
                    on_star.insert(action);
                }
                // (3) moto asks for sqs:SendMessageBatch etc.; AWS authorizes the batch
                // calls with the single actions ("You cannot set permissions explicitly for
                // SendMessageBatch, DeleteMessageBatch, or ChangeMessageVisibilityBatch").
                "sqs:SendMessage" | "sqs:DeleteMessage" | "sqs:ChangeMessageVisibility" => {
                    statements.push(json!({"Effect": "Allow", "Action": format!("{action}Batch"), "Resource": resources}));
                }
                // (4) object_store deletes through DeleteObjects (POST ?delete), which moto
                // authorizes as s3:DeleteObject on the bucket; AWS checks each key.
                "s3:DeleteObject" => {
                    let buckets: BTreeSet<String> = resources
                        .iter()
                        .map(|r| r.split('/').next().unwrap().to_string())
                        .collect();
                    statements
                        .push(json!({"Effect": "Allow", "Action": action, "Resource": buckets}));
                }
                _ => {}
            }
        }
    }
    statements.push(json!({"Effect": "Allow", "Action": on_star, "Resource": "*"}));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The roles' policies as the IAM stack deployed them (role name → document), each put
/// again unchanged with iam:PutRolePolicy, and its `moto-gaps` beside it.
async fn put_policies_moto_can_read(moto: &Moto, admin: &Credentials) -> BTreeMap<String, Value> {
    let cfn = aws_sdk_cloudformation::Client::new(&moto.sdk_config_as(admin).await);
    let name = format!("fleetform-{CLUSTER}-iam");
    let body = cfn
        .get_template()
        .stack_name(&name)
        .send()
        .await
        .unwrap()
        .template_body()
        .unwrap()
        .to_string();
    let template: Value = serde_norway::from_str(&body).unwrap();
    let mut documents = BTreeMap::new();
    let mut puts = Vec::new();
    for resource in template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::IAM::Role")
    {
        let role = resource["Properties"]["RoleName"]
            .as_str()
            .unwrap()
            .to_string();
        for p in resource["Properties"]["Policies"].as_array().unwrap() {
            puts.push(
                json!({"role": role, "name": p["PolicyName"], "document": p["PolicyDocument"]}),
            );
            puts.push(json!({"role": role, "name": "moto-gaps", "document": moto_gaps(&p["PolicyDocument"])}));
            documents.insert(role.clone(), p["PolicyDocument"].clone());
        }
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&puts).unwrap()).unwrap();
    moto.iam_script(
        &["put-role-policies", file.path().to_str().unwrap()],
        Some(admin),
    );
    documents
}

/// The agent, killed if the test ends early.
struct Agent(Child);

impl Agent {
    /// SIGTERM, as systemd stops it: the agent drains and exits 0.
    fn drain(mut self, log: &Path) {
        use nix::sys::signal::{kill, Signal};
        kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            Signal::SIGTERM,
        )
        .unwrap();
        let status = self.0.wait().unwrap();
        assert!(
            status.success(),
            "the agent drains and exits 0: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fleetform agent` (the code `fleetform-agent` runs: `fleetform_agent::cli`) as the
/// worker role, for the x86 node `id`, as user data starts it, without IMDS.
fn start_agent(moto: &Moto, worker: &Credentials, id: &str, dir: &Path) -> Agent {
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetform"));
    c.args([
        "agent",
        "--node-id",
        id,
        "--node-type",
        "x86_worker_node",
        "--store",
        STORE,
        "--queue",
    ])
    .arg(format!("sqs://{CLUSTER}"))
    .args([
        "--resources",
        r#"{"CPU":2,"Intel":1}"#,
        "--imds-endpoint",
        "none",
        "--lease-seconds",
        "6",
        "--spill-dir",
    ])
    .arg(dir.join("spill"))
    .stdout(Stdio::from(log.try_clone().unwrap()))
    .stderr(Stdio::from(log));
    moto.configure_as(&mut c, worker);
    Agent(c.spawn().expect("starting the agent"))
}

/// The x86 worker instances of the cluster that are not terminated.
async fn x86_workers(ec2: &aws_sdk_ec2::Client) -> Vec<(String, String)> {
    workers(ec2, "x86_worker_node").await
}

/// The instances of `node_type` in the cluster that are not terminated: (id, state).
async fn workers(ec2: &aws_sdk_ec2::Client, node_type: &str) -> Vec<(String, String)> {
    let tag = |k: &str, v: &str| Filter::builder().name(format!("tag:{k}")).values(v).build();
    let out = ec2
        .describe_instances()
        .filters(tag("fleetform:cluster", CLUSTER))
        .filters(tag("fleetform:node-type", node_type))
        .send()
        .await
        .unwrap();
    let all = out.reservations().iter().flat_map(|r| r.instances());
    all.map(|i| {
        (
            i.instance_id().unwrap().to_string(),
            i.state().unwrap().name().unwrap().as_str().to_string(),
        )
    })
    .filter(|(_, state)| state != "terminated")
    .collect()
}

async fn wait_for_manifest(store: &Store, job: &str) -> Manifest {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(m) = store
            .get_json::<Manifest>(&layout::success(job))
            .await
            .unwrap()
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "job {job} did not finish within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Until the agent's heartbeat says no slot is busy and no work for `idle` (heartbeats
/// come every 5 s, so the one written during the last task may still be the latest).
async fn wait_until_idle(store: &Store, node: &str, idle: Duration) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let beat: Option<NodeHeartbeat> = store.get_json(&layout::node(node)).await.unwrap();
        if let Some(b) = beat {
            let quiet = chrono::Utc::now() - b.last_work_at;
            if b.busy_slots == 0 && quiet.to_std().is_ok_and(|q| q > idle) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {node} did not report idle within a minute"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One line per (role, action): the resources moto evaluated, S3 keys cut to their first
/// two directories, with counts.
fn report(decisions: &[Decision]) -> String {
    let mut seen: BTreeMap<(String, String), BTreeMap<String, usize>> = BTreeMap::new();
    for d in decisions {
        let resource = d.resource.clone().unwrap_or_default();
        let short = match resource.strip_prefix("arn:aws:s3:::") {
            Some(path) => format!(
                "arn:aws:s3:::{}",
                path.split('/').take(3).collect::<Vec<_>>().join("/")
            ),
            None => resource,
        };
        let key = (
            d.role().unwrap_or(&d.principal).to_string(),
            d.action.clone(),
        );
        *seen.entry(key).or_default().entry(short).or_default() += 1;
    }
    let lines: Vec<String> = seen
        .iter()
        .map(|((role, action), resources)| {
            let r: Vec<String> = resources.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
            format!("{role:<22} {action:<32} {}", r.join(", "))
        })
        .collect();
    lines.join("\n")
}

#[test]
fn aws_head_and_worker_roles_allow_every_call_and_deny_the_rest() {
    let moto = Moto::start_with_iam();
    let f = Fixture::new(CLUSTER, 0);
    std::fs::write(&f.spec, spec_yaml()).unwrap();
    std::fs::write(f.dir.path().join("steps.py"), STEPS_PY).unwrap();
    let rt = runtime();
    let Setup {
        admin,
        head,
        worker,
        documents,
    } = set_up(&moto, &f, &rt);
    moto.enforce_iam();
    let admin_sdk = rt.block_on(moto.sdk_config_as(&admin));
    let store = rt.block_on(Store::open_with(&admin_sdk, STORE)).unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&admin_sdk);
    submit_refuses_what_the_workers_cannot_reach(&moto, &f, &admin);

    // The head: a pass that replaces the arm node apply launched (min_workers, on-demand:
    // RunInstances), then one that launches for queued demand (spot: CreateFleet).
    let arm = rt.block_on(workers(&ec2, "arm_worker_node"));
    assert_eq!(
        arm.len(),
        1,
        "apply launched the arm type's min_workers: {arm:?}"
    );
    rt.block_on(ec2.terminate_instances().instance_ids(&arm[0].0).send())
        .unwrap();
    let start = moto.decisions().len();
    let (code, out) = fleetform(&moto, &f, &head, &["reconcile"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("launch 1 arm_worker_node"), "{out}");
    let jobs = submit_jobs(&moto, &f, &admin);
    let (code, out) = fleetform(&moto, &f, &head, &["reconcile"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("launch 1 x86_worker_node"), "{out}");
    let launched = rt.block_on(x86_workers(&ec2));
    assert_eq!(launched.len(), 1, "{launched:?}");
    let node = launched[0].0.clone();
    rt.block_on(boot_reads(&moto, &head, &worker));

    // The worker: the agent runs both jobs (input from job_inputs, output to job_outputs,
    // a lease renewed on every task, a failing task retried and dead-lettered).
    let agent = start_agent(&moto, &worker, &node, f.dir.path());
    rt.block_on(check_outputs(&store, &admin_sdk, &jobs));

    // The head again, once the node's heartbeat says it has been idle past
    // idle_timeout_minutes (3 s).
    rt.block_on(wait_until_idle(&store, &node, Duration::from_secs(4)));
    let (code, out) = fleetform(&moto, &f, &head, &["reconcile"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("terminate {node} idle")), "{out}");
    let left = rt.block_on(x86_workers(&ec2));
    assert!(
        left.iter()
            .all(|(id, state)| *id != node || state == "shutting-down"),
        "{left:?}"
    );
    agent.drain(&f.dir.path().join("agent.log"));
    let end = moto.decisions().len();

    // Calls outside each role are denied; every call each role made above was allowed.
    let probes = rt.block_on(probe_outside_calls(&moto, &head, &worker));
    let decisions = moto.decisions();
    assert_denied(&probes, &decisions[end..]);
    let ran: Vec<Decision> = decisions[start..end]
        .iter()
        .filter(|d| d.role().is_some())
        .cloned()
        .collect();
    println!(
        "Calls made under each role, as moto authorized them:\n{}",
        report(&ran)
    );
    assert_every_call_is_allowed_and_granted(&ran, &documents);

    // The same calls as AWS would authorize them, conditions included.
    let evaluated = evaluate_as_aws(&moto, &admin, &documents, start..end);
    assert_aws_allows_every_context_and_denies_the_probes(&evaluated);
}

/// tests/e2e/iam_eval.py: the request contexts AWS authorizes each call under, evaluated
/// against the deployed documents by an IAM evaluator that honours conditions.
const IAM_EVAL_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/e2e/iam_eval.py");

/// Runs tests/e2e/iam_eval.py on the decision log's lines `lines` (as the admin, who
/// reads the resources' tags); prints its table; returns its JSON answer.
fn evaluate_as_aws(
    moto: &Moto,
    admin: &Credentials,
    documents: &BTreeMap<String, Value>,
    lines: std::ops::Range<usize>,
) -> Value {
    let policies = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policies.path(), serde_json::to_vec(documents).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(IAM_EVAL_PY)
        .arg("evaluate")
        .arg("--log")
        .arg(moto.decision_log())
        .args([
            "--from",
            &lines.start.to_string(),
            "--to",
            &lines.end.to_string(),
        ])
        .arg("--policies")
        .arg(policies.path())
        .args([
            "--cluster",
            CLUSTER,
            "--store",
            STORE,
            "--datasets",
            DATASETS,
        ])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_REGION", crate::moto::REGION)
        .env("ADMIN_KEY", &admin.key)
        .env("ADMIN_SECRET", &admin.secret)
        .output()
        .expect("running python3 (the one with principalmapper-0ca: .ci/venv/bin first on PATH)");
    let table = String::from_utf8_lossy(&out.stderr);
    println!("{table}");
    assert!(out.status.success(), "iam_eval.py failed: {table}");
    serde_json::from_slice(&out.stdout).expect("iam_eval.py prints one JSON object")
}

/// One evaluated context, on one line.
fn shown(c: &Value) -> String {
    format!(
        "{} {} on {} with {} → {}",
        c["role"], c["action"], c["resource"], c["keys"], c["decision"]
    )
}

/// Every context of every call is allowed; each probe is denied; the contexts that carry
/// the launch's conditions were there to be evaluated.
fn assert_aws_allows_every_context_and_denies_the_probes(evaluated: &Value) {
    let contexts = evaluated["contexts"].as_array().unwrap();
    let unmodelled: Vec<String> = contexts
        .iter()
        .filter(|c| c["modelled"] != true)
        .map(shown)
        .collect();
    assert!(
        unmodelled.is_empty(),
        "calls iam_eval.py has no request context for (model them):\n{}",
        unmodelled.join("\n")
    );
    let refused: Vec<String> = contexts
        .iter()
        .filter(|c| c["decision"] != "allow")
        .map(shown)
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} request contexts would be refused by AWS:\n{}",
        refused.len(),
        contexts.len(),
        refused.join("\n")
    );
    let has = |action: &str, key: &str, value: &str| {
        contexts
            .iter()
            .any(|c| c["action"] == action && c["keys"][key] == value)
    };
    for (action, key, value) in [
        ("ec2:CreateTags", "ec2:CreateAction", "CreateFleet"),
        ("ec2:CreateTags", "ec2:CreateAction", "RunInstances"),
        (
            "ec2:CreateFleet",
            "aws:RequestTag/fleetform:cluster",
            CLUSTER,
        ),
        (
            "ec2:RunInstances",
            "aws:RequestTag/fleetform:cluster",
            CLUSTER,
        ),
        (
            "ec2:TerminateInstances",
            "aws:ResourceTag/fleetform:cluster",
            CLUSTER,
        ),
        ("iam:PassRole", "iam:PassedToService", "ec2.amazonaws.com"),
    ] {
        assert!(
            has(action, key, value),
            "no {action} context with {key} = {value}"
        );
    }
    assert!(
        contexts
            .iter()
            .any(|c| c["action"] == "s3:ListBucket" && c["keys"]["s3:prefix"].is_string()),
        "no s3:ListBucket context with s3:prefix"
    );
    let probes = evaluated["probes"].as_array().unwrap();
    assert!(probes.len() >= 20, "{probes:?}");
    let allowed: Vec<String> = probes
        .iter()
        .filter(|c| c["decision"] == "allow")
        .map(|c| format!("{} ({})", shown(c), c["why"]))
        .collect();
    assert!(
        allowed.is_empty(),
        "calls outside the roles that AWS would allow:\n{}",
        allowed.join("\n")
    );
}

/// Who the test acts as, and the roles' documents as deployed (role name → policy).
struct Setup {
    admin: Credentials,
    head: Credentials,
    worker: Credentials,
    documents: BTreeMap<String, Value>,
}

/// With moto still open: an administrator, the cluster applied, the job data in place,
/// the roles' policies put where moto can read them, and the two roles assumed.
fn set_up(moto: &Moto, f: &Fixture, rt: &tokio::runtime::Runtime) -> Setup {
    let admin: Credentials = serde_json::from_str(&moto.iam_script(&["admin"], None)).unwrap();
    let (code, out) = fleetform(moto, f, &admin, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    moto.iam_script(&["create-bucket", DATASETS], Some(&admin));
    let csv: String = std::iter::once("id,text\n".to_string())
        .chain((0..ROWS).map(|i| format!("{i},Row {i} FROM S3\n")))
        .collect();
    rt.block_on(async {
        let sdk = moto.sdk_config_as(&admin).await;
        let data = fleetform_runtime::location::open_with(&sdk, &format!("s3://{DATASETS}"))
            .await
            .unwrap();
        for key in ["raw/t.csv", "private/t.csv"] {
            data.store
                .put(&data.key(key), PutPayload::from(csv.clone().into_bytes()))
                .await
                .unwrap();
        }
    });
    let documents = rt.block_on(put_policies_moto_can_read(moto, &admin));
    let arn = |role: &str| format!("arn:aws:iam::123456789012:role/fleetform-{CLUSTER}-{role}");
    let sessions: Vec<Credentials> = serde_json::from_str(
        &moto.iam_script(&["assume", &arn("head"), &arn("worker")], Some(&admin)),
    )
    .unwrap();
    let [head, worker] = <[Credentials; 2]>::try_from(sessions).unwrap();
    Setup {
        admin,
        head,
        worker,
        documents,
    }
}

fn write_job(
    f: &Fixture,
    name: &str,
    input: &str,
    output: &str,
    function: &str,
    bytes: u64,
) -> String {
    let p = f.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&p, job_yaml(name, input, output, function, bytes)).unwrap();
    p.to_str().unwrap().to_string()
}

/// Submit refuses a job the workers could not run, naming the field that grants access.
fn submit_refuses_what_the_workers_cannot_reach(moto: &Moto, f: &Fixture, admin: &Credentials) {
    let (raw, private) = (
        format!("s3://{DATASETS}/raw/t.csv"),
        format!("s3://{DATASETS}/private/t.csv"),
    );
    let job = write_job(
        f,
        "private",
        &private,
        &format!("s3://{DATASETS}/clean/p"),
        "slow",
        25_000,
    );
    let (code, out) = fleetform(moto, f, admin, &["submit", &job]);
    assert_eq!(code, 1, "{out}");
    let expected = format!("input.uri: the worker role may not read {private}: add its location to `storage.job_inputs`");
    assert!(out.contains(&expected), "{out}");
    let job = write_job(
        f,
        "into-input",
        &raw,
        &format!("s3://{DATASETS}/raw/out"),
        "slow",
        25_000,
    );
    let (code, out) = fleetform(moto, f, admin, &["submit", &job]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("output.uri: the worker role may not write")
            && out.contains("`storage.job_outputs`"),
        "{out}"
    );
}

/// Four tasks of the slow step and one doomed task: 5 CPU of demand, one x86 node.
/// Returns the job ids.
fn submit_jobs(moto: &Moto, f: &Fixture, admin: &Credentials) -> Vec<String> {
    let mut jobs = Vec::new();
    for (name, function, bytes) in [("clean", "slow", 25_000), ("doomed", "doomed", 1 << 20)] {
        let output = format!("s3://{DATASETS}/clean/{name}");
        let job = write_job(
            f,
            name,
            &format!("s3://{DATASETS}/raw/t.csv"),
            &output,
            function,
            bytes,
        );
        let (code, out) = fleetform(moto, f, admin, &["submit", &job]);
        assert_eq!(code, 0, "{out}");
        jobs.push(out.lines().next().unwrap().trim().to_string());
    }
    jobs
}

/// What user data reads at boot (`aws s3 cp`): the binaries, and the head's spec.
async fn boot_reads(moto: &Moto, head: &Credentials, worker: &Credentials) {
    let as_head = Store::open_with(&moto.sdk_config_as(head).await, STORE)
        .await
        .unwrap();
    for key in ["bin/x86_64/fleetform", "cluster.yaml"] {
        assert!(as_head.get_bytes(key).await.unwrap().is_some(), "{key}");
    }
    let as_worker = Store::open_with(&moto.sdk_config_as(worker).await, STORE)
        .await
        .unwrap();
    assert!(as_worker
        .get_bytes("bin/x86_64/fleetform-agent")
        .await
        .unwrap()
        .is_some());
}

/// Both jobs finished: every row of `clean` written to its job output location, every
/// task of `doomed` dead-lettered.
async fn check_outputs(store: &Store, admin_sdk: &aws_config::SdkConfig, jobs: &[String]) {
    let clean = wait_for_manifest(store, &jobs[0]).await;
    assert_eq!(
        (clean.total_rows, clean.failed_tasks.len()),
        (ROWS as u64, 0),
        "{clean:?}"
    );
    let doomed = wait_for_manifest(store, &jobs[1]).await;
    assert_eq!(
        doomed.failed_tasks.len(),
        doomed.tasks,
        "every doomed task is dead-lettered: {doomed:?}"
    );
    let out =
        fleetform_runtime::location::open_with(admin_sdk, &format!("s3://{DATASETS}/clean/clean"))
            .await
            .unwrap();
    let written = fleetform_runtime::store::list(&out, "").await.unwrap();
    assert!(
        written.contains(&"_SUCCESS".to_string()) && written.len() > 1,
        "{written:?}"
    );
}

/// Each probe failed, and moto denied its action to its role.
fn assert_denied(probes: &[(String, &str, Result<(), String>)], decisions: &[Decision]) {
    let denied: BTreeSet<(&str, &str)> = decisions
        .iter()
        .filter(|d| d.decision == "deny")
        .map(|d| (d.role().unwrap_or_default(), d.action.as_str()))
        .collect();
    for (role, action, result) in probes {
        assert!(result.is_err(), "{role} may not {action}, yet it succeeded");
        assert!(
            denied.contains(&(role.as_str(), *action)),
            "moto did not deny {action} to {role}: {denied:?}"
        );
    }
}

/// Every call was allowed and is one its role's generated policy grants; the calls that
/// matter were made; moto checked the resources of S3 and SQS calls (it logged an ARN).
fn assert_every_call_is_allowed_and_granted(ran: &[Decision], documents: &BTreeMap<String, Value>) {
    let refused: Vec<&Decision> = ran.iter().filter(|d| !d.allowed()).collect();
    assert!(refused.is_empty(), "calls outside the roles: {refused:#?}");
    assert_every_call_is_granted(ran, documents);
    let actions = |role: &str| -> BTreeSet<&str> {
        let role = format!("fleetform-{CLUSTER}-{role}");
        ran.iter()
            .filter(|d| d.role() == Some(role.as_str()))
            .map(|d| d.action.as_str())
            .collect()
    };
    let head = [
        "ec2:CreateFleet",
        "ec2:TerminateInstances",
        "ec2:DescribeInstances",
        "cloudformation:DescribeStacks",
        "s3:PutObject",
    ];
    for a in head {
        assert!(
            actions("head").contains(a),
            "the head made no {a}: {:?}",
            actions("head")
        );
    }
    let worker = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessageBatch",
        "s3:GetObject",
        "s3:PutObject",
    ];
    for a in worker {
        assert!(
            actions("worker").contains(a),
            "the worker made no {a}: {:?}",
            actions("worker")
        );
    }
    let by_arn = ran.iter().filter(|d| {
        d.action.starts_with("s3:")
            || (d.action.starts_with("sqs:") && d.action != "sqs:GetQueueUrl")
    });
    for d in by_arn {
        assert!(
            d.resource
                .as_deref()
                .is_some_and(|r| r.starts_with("arn:aws:")),
            "{d:?}"
        );
    }
}

/// Calls each role must not make, made: (role, IAM action, result).
async fn probe_outside_calls(
    moto: &Moto,
    head: &Credentials,
    worker: &Credentials,
) -> Vec<(String, &'static str, Result<(), String>)> {
    let (head_sdk, worker_sdk) = (
        moto.sdk_config_as(head).await,
        moto.sdk_config_as(worker).await,
    );
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let head_role = format!("fleetform-{CLUSTER}-head");
    let worker_role = format!("fleetform-{CLUSTER}-worker");
    let mut out = Vec::new();

    let sqs = aws_sdk_sqs::Client::new(&worker_sdk);
    let r = sqs
        .create_queue()
        .queue_name("fleetform-iam-extra")
        .send()
        .await
        .map(drop)
        .map_err(|e| err(&e));
    out.push((worker_role.clone(), "sqs:CreateQueue", r));
    let ec2 = aws_sdk_ec2::Client::new(&worker_sdk);
    out.push((
        worker_role.clone(),
        "ec2:DescribeInstances",
        ec2.describe_instances()
            .send()
            .await
            .map(drop)
            .map_err(|e| err(&e)),
    ));
    let raw = fleetform_runtime::location::open_with(&worker_sdk, &format!("s3://{DATASETS}/raw"))
        .await
        .unwrap();
    let r = raw
        .store
        .put(
            &raw.key("written-by-a-worker.csv"),
            PutPayload::from_static(b"x"),
        )
        .await
        .map(drop)
        .map_err(|e| err(&e));
    out.push((worker_role.clone(), "s3:PutObject", r));
    let private =
        fleetform_runtime::location::open_with(&worker_sdk, &format!("s3://{DATASETS}/private"))
            .await
            .unwrap();
    out.push((
        worker_role.clone(),
        "s3:GetObject",
        private
            .store
            .get(&private.key("t.csv"))
            .await
            .map(drop)
            .map_err(|e| err(&e)),
    ));

    let sqs = aws_sdk_sqs::Client::new(&head_sdk);
    let url = format!("{}/123456789012/fleetform-{CLUSTER}-intel", moto.endpoint);
    out.push((
        head_role.clone(),
        "sqs:DeleteQueue",
        sqs.delete_queue()
            .queue_url(url)
            .send()
            .await
            .map(drop)
            .map_err(|e| err(&e)),
    ));
    let ec2 = aws_sdk_ec2::Client::new(&head_sdk);
    let r = ec2
        .delete_launch_template()
        .launch_template_name(format!("fleetform-{CLUSTER}-head"))
        .send()
        .await
        .map(drop)
        .map_err(|e| err(&e));
    out.push((head_role.clone(), "ec2:DeleteLaunchTemplate", r));
    let raw = fleetform_runtime::location::open_with(&head_sdk, &format!("s3://{DATASETS}/raw"))
        .await
        .unwrap();
    out.push((
        head_role,
        "s3:GetObject",
        raw.store
            .get(&raw.key("t.csv"))
            .await
            .map(drop)
            .map_err(|e| err(&e)),
    ));
    out
}

/// Every allowed call's action is in its role's generated document (the `moto-gaps`
/// policy only repeats them, under the names and resources moto asks for).
fn assert_every_call_is_granted(ran: &[Decision], documents: &BTreeMap<String, Value>) {
    for d in ran {
        let role = d.role().unwrap();
        let doc = documents[role].to_string();
        let action = d.action.trim_end_matches("Batch");
        assert!(
            d.action == "sts:GetCallerIdentity" || doc.contains(&format!("\"{action}\"")),
            "{role} made {} ({action}), which its policy does not grant",
            d.action
        );
    }
}

/// A fresh account has no AWSServiceRoleForEC2Spot, and EC2 answers a spot launch by a
/// caller that may not create it with `AuthFailure.ServiceLinkedRoleCreationNotPermitted`
/// (injected at the EC2 boundary: moto launches spot without the role). The round fails
/// with one sentence that says how to create the role, and the offerings are not cached
/// as a capacity shortage (nor is on-demand tried instead: the user asked for spot).
#[test]
fn aws_a_missing_spot_service_linked_role_is_one_sentence() {
    use fleetform::autoscaler::run::{round, Persisted};
    use fleetform_core::spec::Market;

    let moto = Moto::start();
    let f = Fixture::new("slr", 0);
    let (code, out) = crate::aws_reconcile::run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    runtime().block_on(async {
        let missing_role = crate::faults::CapacityShortage::new()
            .offering(Some(Market::Spot), None, None)
            .code("AuthFailure.ServiceLinkedRoleCreationNotPermitted");
        let recorder = crate::faults::LaunchRecorder::default();
        let provider = crate::aws_reconcile::provider(&moto, &f, missing_role, &recorder).await;
        let store = provider.store().clone();
        let queue = fleetform_runtime::queue::Queue::Sqs(fleetform_runtime::queue::sqs::SqsQueue::new(&moto.sdk_config().await, "slr"));
        // Demand only (nothing runs it): the output may be a local directory.
        let demand = format!(
            "name: intel\ninput: {{generate: {{rows: 4, text_length: 10}}}}\noutput: {{uri: '{}'}}\n\
             split: {{rows_per_task: 1}}\nresources: {{CPU: 1, Intel: 1}}\n",
            f.dir.path().join("out").display()
        );
        let demand = fleetform_core::JobSpec::from_yaml("intel.yaml", &demand).unwrap();
        fleetform_agent::plan::submit(&store, &queue, demand).await.unwrap();
        let mut persisted = Persisted::default();
        let err = round(&provider, &store, &mut persisted).await.unwrap_err().to_string();
        assert!(
            err.contains("EC2 cannot launch spot instances in this account yet: it needs the service-linked role AWSServiceRoleForEC2Spot"),
            "{err}"
        );
        assert!(err.contains("`aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`"), "{err}");
        assert!(persisted.state.capacity.entries().is_empty(), "{:?}", persisted.state.capacity.entries());
        let sent = recorder.take();
        assert!(sent.is_empty(), "nothing was launched instead: {sent:?}");
    });
}
