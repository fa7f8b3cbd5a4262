use std::path::Path;

use fleetform_core::job::{BatchFormat, PythonStep};

use super::*;
use crate::ops::python::tests::{require_python, temp_dir};

fn step(file: &str, function: &str, interpreter: &str) -> PythonStep {
    PythonStep {
        file: file.into(),
        function: function.into(),
        batch_format: BatchFormat::Pandas,
        batch_size: 1024,
        interpreter: interpreter.into(),
        timeout_seconds: None,
    }
}

fn check(dir: &Path, src: &str, function: &str) -> CheckReport {
    std::fs::write(dir.join("p.py"), src).unwrap();
    check_step(dir, 2, &step("p.py", function, "python3"))
}

#[test]
fn parsing_finds_definitions_without_importing_the_users_modules() {
    require_python();
    let dir = temp_dir("check");
    // `import a_module_nobody_has` would fail an import; a parse does not care.
    let src = "import a_module_nobody_has\ndef helper(x):\n    return x\nif True:\n    def clean(b):\n        return b\nalias = helper\n";
    for name in ["helper", "clean", "alias"] {
        assert_eq!(check(&dir, src, name), CheckReport::default(), "{name}");
    }
    let r = check(&dir, src, "preprocess_text");
    assert_eq!(r.problems, ["steps[2] (python): p.py defines no top-level `preprocess_text`; its functions: clean, helper"]);
    let r = check(&dir, "class Cleaner:\n    pass\n", "Cleaner");
    assert!(
        r.problems[0].contains("`Cleaner` (p.py:1) is a class"),
        "{r:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_syntax_error_names_file_line_and_column_and_a_missing_file_its_path() {
    require_python();
    let dir = temp_dir("syntax");
    let r = check(
        &dir,
        "def ok(b):\n    return b\n\ndef broken(b)\n    return b\n",
        "ok",
    );
    assert_eq!(
        r.problems,
        ["steps[2] (python): p.py:4:14: syntax error: expected ':'"]
    );
    let r = check_step(&dir, 0, &step("nope.py", "f", "python3"));
    assert!(
        r.problems[0].starts_with(&format!(
            "steps[0] (python): cannot read nope.py ({}, relative to the job file)",
            dir.join("nope.py").display()
        )),
        "{r:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_python_the_check_is_textual_and_says_so() {
    let dir = temp_dir("nopython");
    std::fs::write(
        dir.join("p.py"),
        "def preprocess_text(batch):\n    return batch\n",
    )
    .unwrap();
    // A node interpreter path that is not on this machine, and no python3 either.
    let absent = ["/opt/venv/bin/python", "/nonexistent/python3"];
    let r = check_step_using(
        &dir,
        0,
        &step("p.py", "preprocess_text", "/opt/venv/bin/python"),
        &absent,
    );
    assert!(r.problems.is_empty(), "{r:?}");
    assert_eq!(r.warnings, ["steps[0] (python): no Python found on this machine (/opt/venv/bin/python, /nonexistent/python3): checked p.py for `preprocess_text` as text only"]);
    let r = check_step_using(&dir, 0, &step("p.py", "missing", "python3"), &absent);
    assert_eq!(
        r.problems,
        ["steps[0] (python): p.py has no line `def missing(`"]
    );
    std::fs::remove_dir_all(dir).unwrap();
}
