//! The `fleetform` command line. Each subcommand is a thin adapter onto a module:
//! infrastructure (`aws`), jobs (`jobs`), the local provider (`local`), the autoscaler.
//! The subcommands are defined here and their handlers take plain values, never the CLI's
//! types (the exception: `plan` and `apply` take the `--agent-binary` flags as the
//! `binaries::BinaryArgs` they are parsed into).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::binaries::BinaryArgs;

#[derive(Parser, Debug)]
#[command(
    name = "fleetform",
    version = env!("FLEETFORM_VERSION"),
    about = "Declarative data-preprocessing clusters on EC2, or on this machine",
    long_about = "fleetform converges a data-preprocessing cluster (VPC, Instance Connect Endpoint, IAM \
instance profiles, head node, spot/on-demand x86 and Graviton workers) from one cluster.yaml, \
keeps it sized to the work, and runs jobs on it.\n\n\
Infrastructure:  validate, plan, apply, destroy, reconcile\n\
Jobs:            run, submit, job list|status|logs|cancel\n\
Local cluster:   up (agents as child processes, a directory as object store)\n\
Operations:      status [--watch], dashboard, chaos\n\
Migration:       import ray (a `ray up` cluster YAML → cluster.yaml)\n\n\
AWS access uses the standard configuration chain: AWS_PROFILE, AWS_REGION, \
AWS_ENDPOINT_URL (e.g. a moto server), instance roles.",
    after_help = "Examples:\n  fleetform validate -f cluster.yaml\n  fleetform plan -f cluster.yaml --detailed-exitcode\n  \
fleetform apply -f cluster.yaml --yes\n  fleetform run -f examples/local.yaml examples/jobs/generate.yaml examples/jobs/clean-text.yaml"
)]
pub struct Cli {
    /// Log filter (also RUST_LOG), e.g. `info`, `fleetform=debug`.
    #[arg(long, global = true, default_value = "warn", env = "FLEETFORM_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct ClusterArg {
    /// The cluster spec [default: ./cluster.yaml; for status, job, submit and chaos: the
    /// spec `fleetform run`/`up` last used in this directory, else ./cluster.yaml].
    /// Accepted anywhere on the command line, e.g. `fleetform job status -f FILE ID`.
    #[arg(short = 'f', long = "file", global = true, env = "FLEETFORM_CLUSTER", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl ClusterArg {
    /// Infrastructure commands (validate, plan, apply, destroy, reconcile, up, run): the
    /// file given, else `./cluster.yaml`.
    pub fn spec_file(&self) -> PathBuf {
        self.file.clone().unwrap_or_else(|| PathBuf::from(crate::cluster::DEFAULT_SPEC))
    }

    /// Commands that talk to a running cluster (status, job, submit, chaos): the file
    /// given, else the one `run`/`up` last used here (said on stderr), else `./cluster.yaml`.
    pub fn running_cluster_file(&self) -> PathBuf {
        if let Some(f) = &self.file {
            return f.clone();
        }
        match crate::cluster::last_used() {
            Some(f) => {
                eprintln!("note: using {} (the cluster `fleetform run`/`up` last used here; pass -f FILE for another)", f.display());
                f
            }
            None => PathBuf::from(crate::cluster::DEFAULT_SPEC),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a cluster spec (and optionally job specs against it); report every problem.
    Validate {
        #[command(flatten)]
        cluster: ClusterArg,
        /// Job specs to check against the cluster's node types.
        jobs: Vec<PathBuf>,
        /// Override a job field before checking; `STEM:KEY=VALUE` for one job file only.
        #[arg(long = "set", value_name = "[STEM:]KEY=VALUE")]
        set: Vec<String>,
    },
    /// Show what apply would change. Exit codes with --detailed-exitcode: 0 no changes,
    /// 1 error, 2 changes.
    Plan {
        #[command(flatten)]
        cluster: ClusterArg,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 2 when there are changes (as `terraform plan -detailed-exitcode`).
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        binaries: BinaryArgs,
    },
    /// Converge the cluster to the spec: show the plan, ask, then execute it.
    Apply {
        #[command(flatten)]
        cluster: ClusterArg,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        binaries: BinaryArgs,
    },
    /// Remove everything tagged for the cluster (instances, launch templates, queues,
    /// IAM, network). The data bucket stays unless --delete-data.
    Destroy {
        #[command(flatten)]
        cluster: ClusterArg,
        #[arg(long)]
        yes: bool,
        /// Also empty and delete the cluster store bucket.
        #[arg(long)]
        delete_data: bool,
    },
    /// One autoscaler pass (for cron/CI), or keep reconciling with --watch.
    Reconcile {
        #[command(flatten)]
        cluster: ClusterArg,
        #[arg(long)]
        watch: bool,
        /// Seconds between passes with --watch.
        #[arg(long, default_value_t = 15)]
        interval: u64,
    },
    /// Show nodes, slots, queues, jobs, node events and the latest scaling decisions,
    /// each with the age of what it was read from.
    Status {
        #[command(flatten)]
        cluster: ClusterArg,
        /// Print the status as JSON (what the dashboard's /api/status serves).
        #[arg(long)]
        json: bool,
        /// Refresh full-screen until Ctrl-C, like `watch -n 1 ray status`.
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch (each reads every heartbeat).
        #[arg(long, default_value_t = 1.0, value_name = "S")]
        interval: f64,
    },
    /// Serve a live dashboard of the cluster: the page at /, /api/status (JSON) and
    /// /metrics (Prometheus), read from the cluster store and queues by one poller. For
    /// an AWS cluster it runs wherever you have credentials for the bucket and queues.
    Dashboard {
        #[command(flatten)]
        cluster: ClusterArg,
        /// Address to serve on (IP:PORT); 8265 is Ray's dashboard port.
        #[arg(long, default_value = crate::dashboard::DEFAULT_LISTEN, value_name = "ADDR")]
        listen: String,
        /// Allow a --listen address other machines can reach (the page stays read-only).
        #[arg(long)]
        allow_remote: bool,
        /// Seconds between observations of the store and queues [default: 2 local, 10 AWS,
        /// whose every round is S3 and SQS requests: see docs/benchmarks.md].
        #[arg(long, value_name = "S")]
        interval: Option<f64>,
    },
    /// Run the local cluster in the foreground (local provider only), with its dashboard.
    Up {
        #[command(flatten)]
        cluster: ClusterArg,
        /// Do not serve the dashboard.
        #[arg(long)]
        no_dashboard: bool,
        /// The dashboard's address; when the default is taken, a free loopback port.
        #[arg(long, default_value = crate::dashboard::DEFAULT_LISTEN, value_name = "ADDR")]
        listen: String,
    },
    /// Submit a job and print its id.
    Submit {
        #[command(flatten)]
        cluster: ClusterArg,
        job: PathBuf,
        /// Override a job field, e.g. --set output.uri=file:///tmp/out (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Wait for the job to finish, with progress.
        #[arg(long)]
        wait: bool,
    },
    /// Submit jobs one after the other and wait for each with a progress bar; on the
    /// local provider, start a local cluster for the duration of the run (unless
    /// `fleetform up` is already running one).
    Run {
        #[command(flatten)]
        cluster: ClusterArg,
        /// Job specs, run in order (e.g. generate, then clean).
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
        /// Override a job field; `STEM:KEY=VALUE` applies to the job file STEM.yaml only,
        /// e.g. --set generate:input.generate.rows=100000 (repeatable).
        #[arg(long = "set", value_name = "[STEM:]KEY=VALUE")]
        set: Vec<String>,
        /// Local provider: when a run of this same command was stopped (Ctrl-C, SIGTERM,
        /// kill), cancel the jobs it left and run every job anew. Without it, the command
        /// resumes: jobs that succeeded are not run again, the unfinished one continues from
        /// its checkpoints.
        #[arg(long)]
        restart: bool,
    },
    /// Inspect and control jobs.
    Job {
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Fault injection for the workshop's C8 chapter.
    Chaos {
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(subcommand)]
        command: ChaosCommand,
    },
    /// Convert another tool's cluster file into a fleetform cluster spec.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Print a shell completion script, e.g. `fleetform completions bash > ~/.local/share/bash-completion/completions/fleetform`
    /// (zsh: into a directory on $fpath as `_fleetform`; fish: `~/.config/fish/completions/fleetform.fish`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run a node agent in this process (what the local provider spawns).
    #[command(hide = true)]
    Agent(fleetform_agent::cli::AgentArgs),
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// List jobs with their progress.
    List,
    /// Tasks done, failed and pending of one job.
    Status { job: String },
    /// Task events of a job, oldest first, then what its python steps printed or logged,
    /// per task attempt.
    Logs { job: String },
    /// Stop a job: queued tasks are removed, running ones stop at their next row group.
    Cancel { job: String },
}

#[derive(Subcommand, Debug)]
pub enum ChaosCommand {
    /// Raise a spot interruption notice on a node (locally: in its notice file).
    Interrupt {
        #[arg(long)]
        node: String,
    },
    /// Kill worker nodes without warning (kill -9 locally, TerminateInstances on AWS).
    Terminate {
        #[arg(long)]
        node_type: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Convert a `ray up` cluster YAML (AWS provider) into a fleetform cluster spec.
    #[command(
        long_about = "Convert a `ray up` cluster YAML (AWS provider) into a fleetform cluster spec, written \
to stdout or to -o FILE. Each value carries a comment saying where in the Ray file it came from.\n\n\
Mapped: cluster_name (made a valid fleetform name), provider.region, provider.availability_zone \
(comma-separated → availability_zones), max_workers, upscaling_speed, idle_timeout_minutes, \
head_node_type, and for each of available_node_types: resources, min_workers, max_workers, \
node_config.InstanceType → instance_types, InstanceMarketOptions.MarketType spot → market: spot \
(else on-demand), ImageId → image {ami, architecture} (the architecture from the instance type), \
the root device's BlockDeviceMappings Ebs.VolumeSize/VolumeType → root_volume. setup_commands are \
kept; head_setup_commands and worker_setup_commands are appended to them (fleetform runs one list on \
every node). The head gets `CPU: 0` and no other resources, as fleetform's validate requires.\n\n\
As `ray up` reads the file: no available_node_types means Ray's defaults (ray.head.default and \
ray.worker.default, m5.large, spot workers), or the legacy head_node/worker_nodes sections; node type \
names fleetform refuses (ray.head.default) are renamed (ray_head_default) with every reference; \
`ImageId: latest_dlami` or none (Ray's Deep Learning AMI) becomes `image: al2023`; a head type's \
min/max_workers become a second node type; GPU instance types get `GPU: n`; a LaunchTemplate is read \
with --resolve-launch-templates (else a note says what was not read). See docs/import-ray.md.\n\n\
Not in a Ray file: storage.bucket gets a placeholder (fleetform-<name>-data) to change. SubnetId and \
SecurityGroupIds become the existing-VPC network form with --vpc-id VPC, or --resolve-vpc to ask EC2 \
for their VPC (a Ray file does not name it); without either they are written as a commented-out block and the cluster creates its own VPC.\n\n\
Every key that is not mapped (auth, file_mounts, docker, IamInstanceProfile, KeyName, ...) is listed \
on stderr, at its line, with what fleetform does instead. A malformed file, an unknown key, or an \
unexpanded ${VAR} is reported as file:line:column and nothing is written; so is an imported spec \
that would not pass `fleetform validate` (at the lines of the Ray file its problems came from).",
        after_help = "Examples:\n  \
envsubst < cluster-spot.yaml > filled.yaml     # expand ${VAR}s first\n  \
fleetform import ray filled.yaml -o cluster.yaml\n  \
fleetform import ray examples/ray/cluster-spot.yaml --resolve-images -o cluster.yaml --force\n  \
fleetform validate -f cluster.yaml && fleetform plan -f cluster.yaml"
    )]
    Ray {
        /// The Ray cluster YAML (`ray up` file).
        ray_yaml: PathBuf,
        /// Write the spec here instead of stdout; an existing file is kept unless --force.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
        /// Overwrite OUT if it exists.
        #[arg(long)]
        force: bool,
        /// Ask SSM (standard AWS configuration) for the current Amazon Linux 2023 AMIs and
        /// write `image: al2023` where ImageId is one of them.
        #[arg(long)]
        resolve_images: bool,
        /// The existing VPC of the Ray file's SubnetIds: write `network: {vpc_id,
        /// private_subnet_ids, security_group_ids}` so the cluster uses that network
        /// instead of creating its own (`plan` checks the subnets).
        #[arg(long, value_name = "VPC")]
        vpc_id: Option<String>,
        /// Like --vpc-id, with the VPC asked from EC2 (ec2:DescribeSubnets on the Ray file's
        /// subnets; standard AWS configuration, the Ray file's region).
        #[arg(long, conflicts_with = "vpc_id")]
        resolve_vpc: bool,
        /// Ask EC2 (ec2:DescribeLaunchTemplateVersions; standard AWS configuration, the Ray
        /// file's region) for the launch templates node_configs name, and take their
        /// InstanceType, ImageId, market and root volume where node_config leaves them out.
        #[arg(long)]
        resolve_launch_templates: bool,
    },
}

/// Parse arguments, run the command, print an error's whole chain, return the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if let Command::Agent(args) = cli.command {
        // The agent sets up its own logging and runtime (it is also a separate binary).
        return fleetform_agent::cli::run_agent(args);
    }
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(_) if crate::out::failed() => 1,
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::errors::render(&e));
            1
        }
    }
}

/// The AWS SDK's own targets (prefixes). Their warnings (IMDS region probes, retries)
/// are the SDK talking to itself: what matters reaches the user as our error instead.
const SDK_TARGETS: [&str; 4] = ["aws_config", "aws_smithy", "aws_sdk", "aws_runtime"];

/// The filter to install: the user's, with the SDK's targets held to errors unless the
/// user raised the level (`--log info`, `debug`, ...) or named an SDK target.
pub fn log_filter(filter: &str) -> String {
    let quiet = filter.split(',').map(str::trim).all(|d| matches!(d, "" | "off" | "error" | "warn") || d.contains('='))
        && !SDK_TARGETS.iter().any(|t| filter.contains(t));
    if !quiet {
        return filter.to_string();
    }
    SDK_TARGETS.iter().fold(filter.to_string(), |f, t| format!("{f},{t}=error"))
}

fn init_logging(filter: &str) {
    let filter = log_filter(&std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn dispatch(command: Command) -> anyhow::Result<i32> {
    #[cfg(feature = "aws")]
    use crate::aws;
    use crate::{chaos, jobs, local, reconcile, status};
    match command {
        Command::Validate { cluster, jobs, set } => crate::validate::run(&cluster.spec_file(), &jobs, &set).await,
        #[cfg(feature = "aws")]
        Command::Plan { cluster, json, detailed_exitcode, binaries } => {
            aws::commands::plan(&cluster.spec_file(), &binaries, json, detailed_exitcode).await
        }
        #[cfg(feature = "aws")]
        Command::Apply { cluster, yes, binaries } => aws::commands::apply(&cluster.spec_file(), &binaries, yes).await,
        #[cfg(feature = "aws")]
        Command::Destroy { cluster, yes, delete_data } => aws::commands::destroy(&cluster.spec_file(), yes, delete_data).await,
        #[cfg(not(feature = "aws"))]
        Command::Plan { .. } => Err(fleetform_runtime::without_aws("`fleetform plan`")),
        #[cfg(not(feature = "aws"))]
        Command::Apply { .. } => Err(fleetform_runtime::without_aws("`fleetform apply`")),
        #[cfg(not(feature = "aws"))]
        Command::Destroy { .. } => Err(fleetform_runtime::without_aws("`fleetform destroy`")),
        Command::Reconcile { cluster, watch, interval } => reconcile::command(&cluster.spec_file(), watch, interval).await,
        Command::Status { cluster, json, watch, interval } => status::show(&cluster.running_cluster_file(), json, watch, interval).await,
        Command::Dashboard { cluster, listen, allow_remote, interval } => {
            crate::dashboard::command(&cluster.running_cluster_file(), &listen, allow_remote, interval).await
        }
        Command::Up { cluster, no_dashboard, listen } => local::up(&cluster.spec_file(), (!no_dashboard).then_some(listen.as_str())).await,
        Command::Submit { cluster, job, set, wait } => jobs::submit_command(&cluster.running_cluster_file(), &job, &set, wait).await,
        Command::Run { cluster, jobs, set, restart } => jobs::run_command(&cluster.spec_file(), &jobs, &set, restart).await,
        Command::Job { cluster, command } => {
            let file = cluster.running_cluster_file();
            match command {
                JobCommand::List => jobs::job_list(&file).await,
                JobCommand::Status { job } => jobs::job_status(&file, &job).await,
                JobCommand::Logs { job } => jobs::job_logs(&file, &job).await,
                JobCommand::Cancel { job } => jobs::job_cancel(&file, &job).await,
            }
        }
        Command::Chaos { cluster, command } => {
            let file = cluster.running_cluster_file();
            match command {
                ChaosCommand::Interrupt { node } => chaos::interrupt(&file, &node).await,
                ChaosCommand::Terminate { node_type, count } => chaos::terminate(&file, &node_type, count).await,
            }
        }
        Command::Import { command: ImportCommand::Ray { ray_yaml, output, force, resolve_images, vpc_id, resolve_vpc, resolve_launch_templates } } => {
            let args = crate::import::RayImportArgs { ray_yaml, output, force, resolve_images, vpc_id, resolve_vpc, resolve_launch_templates };
            crate::import::ray_command(&args).await
        }
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a closed stdout.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "fleetform", &mut script);
            crate::out::stdout(&String::from_utf8_lossy(&script))?;
            Ok(0)
        }
        Command::Agent(_) => unreachable!("handled before the runtime starts"),
    }
}

#[cfg(test)]
mod log_filter_tests {
    use super::log_filter;

    #[test]
    fn the_sdk_is_quiet_unless_the_user_raises_the_level() {
        assert_eq!(log_filter("warn"), "warn,aws_config=error,aws_smithy=error,aws_sdk=error,aws_runtime=error");
        assert!(log_filter("warn,fleetform=debug").ends_with("aws_runtime=error"));
        assert_eq!(log_filter("debug"), "debug");
        assert_eq!(log_filter("info"), "info");
        assert_eq!(log_filter("warn,aws_config=debug"), "warn,aws_config=debug");
    }
}
