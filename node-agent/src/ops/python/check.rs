//! Submit-time checks of python steps, on the submitting machine: the file exists
//! (relative to the job file) and defines the function at its top level. The file is
//! parsed by `python3` (`check.py`, the `ast` module), never imported, so the user's heavy
//! modules need not be installed here; without a python3 the check falls back to a text
//! search and says so. `ship` reads the files that go to the store with the job.

use std::path::{Path, PathBuf};
use std::process::Command;

use fleetform_core::job::{PythonStep, Step};
use fleetform_core::JobSpec;

const CHECK_PY: &str = include_str!("check.py");

/// What the checks found: problems fail the submit; warnings are printed.
#[derive(Debug, Default, PartialEq)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// A python step's source, read at submit, stored with the job (by the runtime).
pub use fleetform_runtime::jobs::CodeFile;

/// The directory a job file's relative `file:` paths start from.
pub fn job_dir(job_file: &Path) -> PathBuf {
    match job_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Check every python step of a job read from `job_file`.
pub fn check_job(job_file: &Path, spec: &JobSpec) -> CheckReport {
    let dir = job_dir(job_file);
    let mut report = CheckReport::default();
    for (i, step) in spec.steps.iter().enumerate() {
        if let Step::Python(p) = step {
            let r = check_step(&dir, i, p);
            report.problems.extend(r.problems);
            report.warnings.extend(r.warnings);
        }
    }
    report
}

/// Check one python step (`index` in the job's steps) whose file is relative to `job_dir`.
pub fn check_step(job_dir: &Path, index: usize, step: &PythonStep) -> CheckReport {
    check_step_using(job_dir, index, step, &[&step.interpreter, "python3"])
}

/// `check_step`, parsing with the first of `pythons` that runs here.
fn check_step_using(
    job_dir: &Path,
    index: usize,
    step: &PythonStep,
    pythons: &[&str],
) -> CheckReport {
    let at = format!("steps[{index}] (python)");
    let path = job_dir.join(&step.file);
    let mut report = CheckReport::default();
    if let Err(e) = std::fs::metadata(&path) {
        report.problems.push(format!(
            "{at}: cannot read {} ({}, relative to the job file): {e}",
            step.file,
            path.display()
        ));
        return report;
    }
    match parse_with_python(&path, step, pythons) {
        Ok(found) => report
            .problems
            .extend(found.err().map(|m| format!("{at}: {m}"))),
        Err(why) => {
            report.warnings.push(format!(
                "{at}: {why}: checked {} for `{}` as text only",
                step.file, step.function
            ));
            if let Some(problem) = text_check(&path, step) {
                report.problems.push(format!("{at}: {problem}"));
            }
        }
    }
    report
}

/// Read the python steps' files for shipping, after checking them. Err lists every
/// problem; Ok carries the files and any warnings.
pub fn ship(job_file: &Path, spec: &JobSpec) -> Result<(Vec<CodeFile>, Vec<String>), Vec<String>> {
    let report = check_job(job_file, spec);
    if !report.problems.is_empty() {
        return Err(report.problems);
    }
    let dir = job_dir(job_file);
    let mut files: Vec<CodeFile> = Vec::new();
    for step in &spec.steps {
        let Step::Python(p) = step else { continue };
        if files.iter().any(|f| f.file == p.file) {
            continue;
        }
        let path = dir.join(&p.file);
        let bytes = std::fs::read(&path)
            .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        files.push(CodeFile {
            file: p.file.clone(),
            bytes,
        });
    }
    Ok((files, report.warnings))
}

/// Ok(Ok(())) when defined, Ok(Err(problem)) when not; Err(why) when no Python could
/// parse it here.
fn parse_with_python(
    path: &Path,
    step: &PythonStep,
    pythons: &[&str],
) -> Result<Result<(), String>, String> {
    let mut tried = Vec::new();
    for &python in pythons {
        if tried.contains(&python) {
            continue;
        }
        tried.push(python);
        let out = match Command::new(python)
            .arg("-c")
            .arg(CHECK_PY)
            .arg(path)
            .arg(&step.file)
            .arg(&step.function)
            .output()
        {
            Ok(o) if o.status.success() => o,
            _ => continue,
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            continue;
        };
        return Ok(judge(&v, step));
    }
    Err(format!(
        "no Python found on this machine ({})",
        tried.join(", ")
    ))
}

fn judge(v: &serde_json::Value, step: &PythonStep) -> Result<(), String> {
    let (file, name) = (&step.file, &step.function);
    if let Some(e) = v.get("syntax_error") {
        return Err(format!(
            "{file}:{}:{}: syntax error: {}",
            e["line"],
            e["column"],
            e["message"].as_str().unwrap_or("?")
        ));
    }
    if let Some(e) = v.get("unreadable").and_then(|e| e.as_str()) {
        return Err(format!("cannot read {file}: {e}"));
    }
    let found = &v["found"];
    if found.is_null() {
        let functions: Vec<&str> = v["functions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .collect();
        let has = if functions.is_empty() {
            "it defines no function".to_string()
        } else {
            format!("its functions: {}", functions.join(", "))
        };
        return Err(format!("{file} defines no top-level `{name}`; {has}"));
    }
    if found[2] == "class" {
        return Err(format!(
            "`{name}` ({file}:{}) is a class; a python step calls a function with each batch (callable classes, Ray's actor form, are not supported)",
            found[1]
        ));
    }
    Ok(())
}

/// Without Python: a line that starts `def NAME(`, `async def NAME(` or `NAME =`.
fn text_check(path: &Path, step: &PythonStep) -> Option<String> {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => return Some(format!("cannot read {}: {e}", step.file)),
    };
    let name = regex::escape(&step.function);
    let re = regex::Regex::new(&format!(
        r"(?m)^(?:(?:async\s+)?def\s+{name}\s*\(|{name}\s*(?::[^=\n]*)?=[^=])"
    ))
    .expect("a valid pattern");
    if re.is_match(&src) {
        None
    } else {
        Some(format!(
            "{} has no line `def {}(`",
            step.file, step.function
        ))
    }
}

#[cfg(test)]
mod tests;
