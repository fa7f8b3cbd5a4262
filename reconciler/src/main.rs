fn main() {
    std::process::exit(fleetform::cli::main());
}
