//! Key names in the cluster store (docs/DESIGN.md, the picture). One place, so the agent,
//! the reconciler and the tests agree.

pub fn job(job: &str) -> String {
    format!("jobs/{job}/job.json")
}
pub fn jobs_prefix() -> &'static str {
    "jobs/"
}
pub fn tasks(job: &str) -> String {
    format!("jobs/{job}/tasks.json")
}
pub fn done_prefix(job: &str) -> String {
    format!("jobs/{job}/done/")
}
pub fn done(job: &str, task: &str) -> String {
    format!("jobs/{job}/done/{task}.json")
}
pub fn failed_prefix(job: &str) -> String {
    format!("jobs/{job}/failed/")
}
pub fn failed(job: &str, task: &str) -> String {
    format!("jobs/{job}/failed/{task}.json")
}
pub fn checkpoint(job: &str, task: &str) -> String {
    format!("jobs/{job}/checkpoints/{task}.json")
}
/// A python step's source file, shipped with the job: named by its content (two steps
/// may name different files with one base name) and kept under its own base name, so the
/// worker's tracebacks name `preprocess.py`.
pub fn code(job: &str, sha256: &str, file_name: &str) -> String {
    format!("jobs/{job}/code/{sha256}/{file_name}")
}
/// What a job's python steps printed or logged, per task attempt, in segments written as
/// the attempt goes (at each checkpoint and at its end): `job logs` and `run` read them.
pub fn task_logs_prefix(job: &str) -> String {
    format!("jobs/{job}/logs/")
}
/// One segment of an attempt's output. `attempt` sorts by start time; segments by `seq`.
pub fn task_log(job: &str, task: &str, attempt: &str, seq: u32) -> String {
    format!("jobs/{job}/logs/{task}/{attempt}/{seq:05}.log")
}
pub fn cancel(job: &str) -> String {
    format!("jobs/{job}/cancel")
}
/// The job's commit decision (its manifest, with whether it may publish), written with
/// create-if-absent before the output is settled; `_SUCCESS` follows once it is.
pub fn decision(job: &str) -> String {
    format!("jobs/{job}/decision.json")
}
pub fn success(job: &str) -> String {
    format!("jobs/{job}/_SUCCESS")
}
pub fn nodes_prefix() -> &'static str {
    "nodes/"
}
pub fn node(node: &str) -> String {
    format!("nodes/{node}.json")
}
/// Written by the autoscaler to ask a node to drain (take no new tasks, finish the ones
/// it holds) before it is terminated.
pub fn node_drain(node: &str) -> String {
    format!("nodes/{node}.drain")
}
/// The autoscaler's state between passes (capacity cache, history, latest status).
pub fn autoscaler_state() -> &'static str {
    "autoscaler/state.json"
}
pub fn agent_binary(uname_arch: &str) -> String {
    format!("bin/{uname_arch}/fleetform-agent")
}
pub fn source_bundle() -> &'static str {
    "bin/src/fleetform-src.tar.gz"
}
/// Output object of a task: deterministic, and distinct for distinct unit ranges, so a
/// retry rewrites identical bytes and never overwrites a different range.
pub fn part(task: &str, first_unit: usize, end_unit: usize) -> String {
    format!("part-{task}-{first_unit:05}-{end_unit:05}.parquet")
}
/// A job id as one path component, on a node's disk (its spill directory for the job)
/// and in a key that is also a URI path (the output's `_staging/` directory): ASCII
/// letters, digits, `-`, `_` and a `.` that is not first as they are, every other byte as
/// `+XX` (hex). So no id can be `..`, contain `/` or NUL, or name a hidden file, whatever a
/// record in the store says; and object_store, which percent-encodes other characters in
/// keys but not in a location's directory, reads and writes the same file either way
/// (`텍스트` would be the directory `텍스트` by URI and `%ED%85%8D…` by key). Distinct ids
/// stay distinct (`+` is encoded too).
pub fn path_component(job: &str) -> String {
    let mut out = String::with_capacity(job.len());
    for (i, b) in job.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("+00"); // an empty id still names a directory of its own
    }
    out
}

/// Where a job's tasks write their parts, below its output location: a directory of its
/// own whose name starts with `_`, which pyarrow datasets, Spark, Hive and fleetform's own
/// input listing skip, so a reader listing the output never sees a job in progress.
pub fn staging_dir(job: &str) -> String {
    format!("_staging/{}", path_component(job))
}
/// A staged part's name once published: with a tag of the job (a short hash of its id) in
/// front, so a new job's files never overwrite the files of the output they replace while
/// that output's `_SUCCESS` still names them.
pub fn published_part(job_tag: &str, staged: &str) -> String {
    match staged.strip_prefix("part-") {
        Some(rest) => format!("part-{job_tag}-{rest}"),
        None => format!("{job_tag}-{staged}"),
    }
}
/// The staged name a published part came from (the inverse of [`published_part`]).
pub fn staged_part(job_tag: &str, published: &str) -> String {
    match published.strip_prefix(&format!("part-{job_tag}-")) {
        Some(rest) => format!("part-{rest}"),
        None => published.strip_prefix(&format!("{job_tag}-")).unwrap_or(published).to_string(),
    }
}
/// `outputs/<hash of the output URI>.json`: the job that may publish into that output.
/// The latest submit claims it; an older job that finishes later publishes nothing.
pub fn output_claim(uri_hash: &str) -> String {
    format!("outputs/{uri_hash}.json")
}
/// Task ids sort in submit order.
pub fn task_id(i: usize) -> String {
    format!("t{i:06}")
}

/// SQS queue of a resource class: `fleetform-<cluster>-<class>`.
pub fn sqs_queue(cluster: &str, class_slug: &str) -> String {
    format!("fleetform-{cluster}-{class_slug}")
}
/// Its dead-letter queue.
pub fn sqs_dead_letter_queue(cluster: &str, class_slug: &str) -> String {
    format!("fleetform-{cluster}-{class_slug}-dlq")
}

/// On an AWS node: everything `setup_commands` print, also copied to the console (EC2
/// "Get system log"). Here because `fleetform status` names it too.
pub const SETUP_LOG: &str = "/var/log/fleetform-setup.log";

#[cfg(test)]
mod tests {
    #[test]
    fn a_job_id_is_one_safe_path_component() {
        assert_eq!(super::path_component("generate-20261207-1.v2"), "generate-20261207-1.v2");
        assert_eq!(super::path_component("텍-1"), "+ED+85+8D-1");
        assert_eq!(super::path_component("../../x"), "+2E.+2F..+2Fx");
        assert_eq!(super::path_component("/srv/x"), "+2Fsrv+2Fx");
        assert_eq!(super::path_component(".."), "+2E.");
        assert_eq!(super::path_component("a\0b+%"), "a+00b+2B+25");
        for id in ["..", ".", "/", "a/../b", "\0", ""] {
            let c = super::path_component(id);
            let p = std::path::Path::new(&c);
            assert_eq!(p.components().count(), 1, "{id:?} -> {c}");
            assert!(matches!(p.components().next(), Some(std::path::Component::Normal(_))), "{id:?} -> {c}");
        }
        assert_eq!(super::staging_dir("텍-1"), "_staging/+ED+85+8D-1");
        for staged in ["part-t000001-00000-00004.parquet", "other.parquet"] {
            assert_eq!(super::staged_part("ab12", &super::published_part("ab12", staged)), staged);
        }
    }
}
