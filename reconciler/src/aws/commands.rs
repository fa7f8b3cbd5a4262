//! `fleetform plan | apply | destroy`: load and validate the spec, connect, observe,
//! diff, print, and (apply/destroy) execute. Exit codes as Terraform's.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Result;
use fleetform_core::spec::ProviderKind;
use fleetform_core::ClusterSpec;

use crate::aws::context::AwsContext;
use crate::aws::stages::desired::{self, Env, Resolved};
use crate::aws::stages::diff::diff;
use crate::aws::stages::state::{Desired, Live, Purpose};
use crate::aws::names::{self, StackKind, TAG_CLUSTER};
use crate::aws::stages::plan::Plan;
use crate::aws::resources::{existing_network, store_artifacts};
use crate::aws::stages::{apply, destroy_sweep, live};
use crate::binaries::BinaryArgs;

/// Load and validate; print every problem and return None when there are any.
pub fn load(file: &Path, command: &str) -> Option<ClusterSpec> {
    match ClusterSpec::load(file) {
        Err(diags) => {
            eprintln!("{diags}");
            None
        }
        Ok(spec) if spec.provider.kind != ProviderKind::Aws => {
            eprintln!(
                "error: `fleetform {command}` manages clusters on AWS, and {} uses the local provider: run `fleetform up -f {}` instead",
                file.display(),
                file.display()
            );
            None
        }
        Ok(spec) => Some(spec),
    }
}

/// Observe everything (concurrently) and build the desired state for `purpose`, with
/// the binaries given on the command line.
pub async fn gather(ctx: &AwsContext, spec_path: &Path, given: &BinaryArgs, purpose: Purpose, delete_data: bool) -> Result<(Desired, Live)> {
    let (stacks, instances, launch_templates, queues) = tokio::try_join!(
        live::stacks(ctx),
        live::instances(ctx, None),
        live::launch_templates(ctx),
        live::queues(ctx)
    )?;
    let mut live = Live { stacks, instances, launch_templates, queues, artifacts: Default::default() };
    let cluster = ctx.cluster();
    if purpose == Purpose::Destroy {
        let mut d = Desired::empty(cluster, Purpose::Destroy);
        let bucket = ctx.spec.storage.bucket.clone().unwrap_or_default();
        match (live.stacks.contains_key(&StackKind::Data), delete_data) {
            (true, false) => {
                d.retained.push(StackKind::Data);
                d.notes.push(format!(
                    "kept: bucket {bucket} (stack {}); `fleetform destroy --delete-data` empties and deletes it",
                    StackKind::Data.stack_name(cluster)
                ));
            }
            (false, true) => d.notes.push(format!("bucket {bucket} was not created by fleetform: --delete-data leaves it alone")),
            _ => {}
        }
        return Ok((d, live));
    }
    let store = store_artifacts::bucket_store(ctx)?;
    let bucket_exists = store_artifacts::bucket_exists(store.as_ref()).await?;
    let stored = match bucket_exists {
        true => store_artifacts::observed(store.as_ref(), &names::store_prefix(&ctx.spec), &store_artifacts::keys(&ctx.spec)).await?,
        false => Default::default(),
    };
    live.artifacts = stored.iter().map(|(k, s)| (k.clone(), s.sha256.clone())).collect();
    let binaries = store_artifacts::desired(&ctx.spec, spec_path, given, &stored)?;
    let images = desired::resolve_images(ctx).await?;
    let existing_network = match existing_network::Wanted::from_spec(&ctx.spec, &ctx.region) {
        Some(w) => Some(existing_network::check(&w, &existing_network::observe(ctx, &w).await?)),
        None => None,
    };
    let resolved = Resolved {
        images,
        network_outputs: live.stacks.get(&StackKind::Network).map(|s| s.outputs.clone()).unwrap_or_default(),
        artifacts: binaries.artifacts,
        removed_artifacts: binaries.removed,
        notes: binaries.notes,
        external_bucket: bucket_exists && !live.stacks.contains_key(&StackKind::Data),
        existing_network,
    };
    let env = Env { region: ctx.region.clone(), partition: ctx.partition.clone(), account: ctx.account.clone() };
    Ok((desired::build(&ctx.spec, &env, &resolved)?, live))
}

fn print_plan(plan: &Plan, json: bool) {
    if json {
        println!("{}", plan.to_json());
    } else {
        print!("{}", plan.render());
    }
}

/// Terraform's confirmation: only `yes` goes ahead.
fn confirm(question: &str) -> bool {
    print!("\n{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    answer.trim() == "yes"
}

/// Flags that contradict each other, printed; false when there are any.
fn binaries_ok(given: &BinaryArgs) -> bool {
    let problems = given.problems();
    for p in &problems {
        eprintln!("error: {p}");
    }
    problems.is_empty()
}

pub async fn plan(file: &Path, given: &BinaryArgs, json: bool, detailed_exitcode: bool) -> Result<i32> {
    let Some(spec) = load(file, "plan") else { return Ok(1) };
    if !binaries_ok(given) {
        return Ok(1);
    }
    let ctx = AwsContext::connect(&spec).await?;
    let (desired, live) = gather(&ctx, file, given, Purpose::Apply, false).await?;
    let plan = diff(&desired, &live);
    print_plan(&plan, json);
    if !plan.blockers.is_empty() {
        return Ok(1);
    }
    Ok(if detailed_exitcode && !plan.is_empty() { 2 } else { 0 })
}

pub async fn apply(file: &Path, given: &BinaryArgs, yes: bool) -> Result<i32> {
    let Some(spec) = load(file, "apply") else { return Ok(1) };
    if !binaries_ok(given) {
        return Ok(1);
    }
    let ctx = AwsContext::connect(&spec).await?;
    let (desired, live) = gather(&ctx, file, given, Purpose::Apply, false).await?;
    let plan = diff(&desired, &live);
    print_plan(&plan, false);
    if !plan.blockers.is_empty() {
        return Ok(1);
    }
    if plan.is_empty() {
        return Ok(0);
    }
    if !yes && !confirm("Do you want to perform these actions?") {
        println!("\nApply cancelled.");
        return Ok(1);
    }
    println!();
    let report = apply::execute(&ctx, &plan, &desired, &live).await?;
    let s = plan.summary();
    println!("\nApply complete! Resources: {} added, {} changed, {} destroyed.", s.add, s.change, s.destroy);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok(if report.warnings.is_empty() { 0 } else { 1 })
}

pub async fn destroy(file: &Path, yes: bool, delete_data: bool) -> Result<i32> {
    let Some(spec) = load(file, "destroy") else { return Ok(1) };
    let ctx = AwsContext::connect(&spec).await?;
    let (desired, live) = gather(&ctx, file, &BinaryArgs::default(), Purpose::Destroy, delete_data).await?;
    let plan = diff(&desired, &live);
    if plan.is_empty() {
        println!("Nothing to destroy: nothing tagged {TAG_CLUSTER}={} is left.", ctx.cluster());
        for n in &plan.notes {
            println!("Note: {n}");
        }
        return Ok(0);
    }
    print_plan(&plan, false);
    if !plan.blockers.is_empty() {
        return Ok(1);
    }
    if !yes && !confirm(&format!("Do you really want to destroy cluster `{}`?", ctx.cluster())) {
        println!("\nDestroy cancelled.");
        return Ok(1);
    }
    println!();
    apply::execute(&ctx, &plan, &desired, &live).await?;
    let left = destroy_sweep::leftovers(&ctx, &desired).await?;
    println!("\nDestroy complete! Resources: {} destroyed.", plan.summary().destroy);
    if left.is_empty() {
        println!("Nothing tagged {TAG_CLUSTER}={} is left.", ctx.cluster());
        return Ok(0);
    }
    for (kind, items) in &left {
        eprintln!("warning: still tagged for the cluster: {kind}: {}", items.join(", "));
    }
    eprintln!("error: destroy left resources behind; run `fleetform destroy` again");
    Ok(1)
}
