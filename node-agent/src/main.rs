use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "fleetform-agent", version, about = "fleetform's node agent (a systemd service on each worker)")]
struct Cli {
    #[command(flatten)]
    args: fleetform_agent::cli::AgentArgs,
}

fn main() {
    let cli = Cli::parse();
    std::process::exit(fleetform_agent::cli::run_agent(cli.args));
}
