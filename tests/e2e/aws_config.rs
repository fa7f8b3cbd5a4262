//! One AWS configuration and one queue definition (one `SdkConfig` for every client, one
//! definition of the queues' attributes: docs/aws.md), on moto: with the region only in the
//! spec, apply, submit and status all work, say nothing of the SDK's internals, and
//! submit's CreateQueue calls match the queues apply deployed.

use std::collections::BTreeMap;
use std::process::Output;

use aws_sdk_sqs::types::QueueAttributeName;
use fleetform_runtime::queue::sqs::{managed_attributes, SqsQueue};
use fleetform_core::queue::TaskQueue;

use crate::aws_reconcile::{runtime, Fixture};
use crate::moto::Moto;

/// `fleetform <args> -f SPEC` with the region only in the spec: AWS_REGION and
/// AWS_DEFAULT_REGION are removed from the child's environment. Instance metadata is
/// enabled but points at moto, which does not serve it (as on a laptop, where nothing
/// does): a standard-chain region lookup would reach it and warn. Returns (code, stdout,
/// stderr).
fn run_without_region(moto: &Moto, f: &Fixture, args: &[&str]) -> (i32, String, String) {
    let mut c = moto.fleetform(args);
    c.args(["-f", f.spec.to_str().unwrap()])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &moto.endpoint)
        .env_remove("FLEETFORM_LOG")
        .env_remove("RUST_LOG")
        .env("FLEETFORM_SOURCE_DIR", f.dir.path().join("src"));
    let Output { status, stdout, stderr } = c.output().expect("running fleetform");
    let (out, err) = (String::from_utf8_lossy(&stdout).to_string(), String::from_utf8_lossy(&stderr).to_string());
    println!("$ fleetform {}\n{out}{err}[exit {}]\n", args.join(" "), status.code().unwrap_or(-1));
    (status.code().unwrap_or(-1), out, err)
}

fn assert_no_sdk_chatter(stderr: &str) {
    for line in stderr.lines() {
        assert!(!(line.contains("WARN") && line.contains("aws_")), "an SDK warning reached the terminal: {line}\n{stderr}");
    }
}

/// Every queue of the cluster and its managed attributes, as deployed.
async fn deployed(sqs: &aws_sdk_sqs::Client, cluster: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let urls = sqs.list_queues().queue_name_prefix(format!("fleetform-{cluster}-")).send().await.unwrap();
    let mut out = BTreeMap::new();
    for url in urls.queue_urls() {
        let got = sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::All).send().await.unwrap();
        let attrs = managed_attributes(got.attributes().into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str())));
        out.insert(url.rsplit('/').next().unwrap().to_string(), attrs);
    }
    out
}

#[test]
fn aws_region_only_in_the_spec_apply_submit_status() {
    let moto = Moto::start();
    let f = Fixture::new("regiononly", 0);
    let rt = runtime();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));

    let (code, out, err) = run_without_region(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_no_sdk_chatter(&err);
    let before = rt.block_on(deployed(&sqs, "regiononly"));
    assert_eq!(before.len(), 6, "{before:?}"); // default, intel, graviton: each with its DLQ
    assert!(before.values().all(|a| a.len() >= 2), "{before:?}");

    // submit runs `ensure` (CreateQueue for the class and its DLQ) on the deployed queues:
    // SQS answers QueueNameExists if its attributes differ in any way.
    let job = f.dir.path().join("gen.yaml");
    std::fs::write(
        &job,
        "name: gen\ninput:\n  generate: {rows: 1000, seed: 1, text_length: 10}\n\
         output: {uri: 's3://fleetform-regiononly-data/regiononly/out'}\nsplit: {rows_per_task: 500}\nresources: {CPU: 1}\n",
    )
    .unwrap();
    let (code, out, err) = run_without_region(&moto, &f, &["submit", job.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.trim().starts_with("gen-"), "{out}");
    assert_no_sdk_chatter(&err);
    assert_eq!(rt.block_on(deployed(&sqs, "regiononly")), before, "submit changed the queues apply deployed");

    // `ensure` straight on every class, as the agent's library runs it: no error, no change.
    let sdk = rt.block_on(moto.sdk_config());
    let q = SqsQueue::new(&sdk, "regiononly");
    for class in ["default", "graviton", "intel"] {
        rt.block_on(q.ensure(class)).unwrap_or_else(|e| panic!("ensure({class}) after apply: {e}"));
    }
    assert_eq!(rt.block_on(deployed(&sqs, "regiononly")), before);

    let (code, out, err) = run_without_region(&moto, &f, &["status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cluster regiononly"), "{out}");
    assert!(out.contains("gen-"), "{out}");
    assert_no_sdk_chatter(&err);

    // No region anywhere: one sentence that says where to set it, still no SDK dump.
    let spec = std::fs::read_to_string(&f.spec).unwrap().replace("region: us-west-2, ", "");
    std::fs::write(&f.spec, spec).unwrap();
    let (code, out, err) = run_without_region(&moto, &f, &["submit", job.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no AWS region is set: add `provider.region` to the cluster spec or set AWS_REGION"), "{err}");
    assert_no_sdk_chatter(&err);
}
