//! `fn-lengths <dir>... [--over N]`: the shipped functions under each directory longer than
//! N lines (80 by default), longest first, as `lines  file:line  name`, then a count.
//! Evidence for "functions fit on a screen", rerunnable by anyone:
//! `cargo run -p fleetform-testkit --bin fn-lengths -- core runtime node-agent reconciler --over 80`.
//! See `fleetform_testkit::fn_lengths` for what counts as shipped and as a line.

use std::path::PathBuf;
use std::process::ExitCode;

use fleetform_testkit::fn_lengths::shipped_fn_lengths;

const USAGE: &str = "usage: fn-lengths <dir>... [--over N]   (N defaults to 80)";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fn-lengths: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let (dirs, over) = parse_args(std::env::args().skip(1))?;
    let mut all = Vec::new();
    for dir in &dirs {
        all.extend(shipped_fn_lengths(dir).map_err(|e| e.to_string())?);
    }
    all.sort_by(|a, b| {
        b.lines
            .cmp(&a.lines)
            .then_with(|| (&a.file, a.line).cmp(&(&b.file, b.line)))
    });
    let long: Vec<_> = all.iter().filter(|f| f.lines > over).collect();
    for f in &long {
        println!(
            "{:>5}  {}:{}  {}",
            f.lines,
            f.file.display(),
            f.line,
            f.name
        );
    }
    println!(
        "{} of {} shipped functions are over {over} lines",
        long.len(),
        all.len()
    );
    Ok(())
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(Vec<PathBuf>, usize), String> {
    let mut dirs = Vec::new();
    let mut over = 80;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--over" => {
                let n = args
                    .next()
                    .ok_or(format!("--over needs a number of lines\n{USAGE}"))?;
                over = n
                    .parse()
                    .map_err(|_| format!("--over {n}: not a number of lines\n{USAGE}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}\n{USAGE}")),
            _ => dirs.push(PathBuf::from(arg)),
        }
    }
    if dirs.is_empty() {
        return Err(format!("name at least one directory to scan\n{USAGE}"));
    }
    Ok((dirs, over))
}
