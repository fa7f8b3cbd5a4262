//! The workshop labs (`docs/workshop/*.md`) are executed as written, so they cannot rot.
//! Needs more than a unit test: the pages drive the real CLI, local clusters and all.
//!
//! The convention, which `docs/workshop/README.md` explains to readers:
//!
//! - a fenced block opened with ```` ```sh lab ```` holds commands, one per line, each
//!   starting with `$ `; lines starting with `#` are comments;
//! - the fenced block right after it (blank lines allowed in between), opened with
//!   ```` ```text ````, is the output the commands print together (stdout and stderr as a
//!   terminal shows them). A lab block with no text block must print nothing;
//! - in expected output, `…` matches any text within a line (also none), `<name>` (lower
//!   case letters, digits, `-`, `_`) matches one or more non-space characters, and a line
//!   that is only `…` matches any number of lines; runs of spaces compare as one space;
//! - a command that exits non-zero prints `[exit N]` after its output, so a page shows an
//!   expected failure explicitly (and an unexpected one fails the test);
//! - `$ CMD &` starts CMD in the background (its output goes where CMD redirects it, else
//!   nowhere); `$ kill %N` stops background job N with SIGTERM and waits for it;
//!   `$ wait %N` waits for it to exit; `$ NAME=$(CMD)` keeps CMD's output in `$NAME` for
//!   the commands after it; anything else runs with `bash -c` in the page's directory;
//! - blocks opened with anything else (```` ```sh aws ````, ```` ```sh ````, ```` ```yaml ````)
//!   are not executed.
//!
//! Each page runs in its own temporary directory holding a copy of the repository's
//! `examples/` and `cluster.yaml`, with `fleetform` on the PATH being this test's own
//! binary. Background jobs still running when the page ends are stopped (SIGTERM, then
//! SIGKILL after a grace period), whether the page passed or not.
//!
//! `FLEETFORM_LABS_PRINT=1` prints every block's actual output (for writing a page).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pages run one at a time: they start local clusters that would compete for the
/// machine's cores (and the timing some labs show).
static ONE_PAGE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A foreground command taking longer than this fails the page.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a stopped background job may take to exit (`fleetform up` drains its agents).
const STOP_GRACE: Duration = Duration::from_secs(120);

/// The pages, in the workshop's order. A page in the folder but not here fails
/// `labs_every_page_is_listed`.
const PAGES: &[&str] = &[
    "README.md",
    "C1-vpc.md",
    "C2-cluster.md",
    "C3-jobs.md",
    "C4-autoscaling.md",
    "C5-spot.md",
    "C6-mixed-market.md",
    "C7-custom-resources.md",
    "C8-fault-tolerance.md",
    "C9-benchmark.md",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn workshop() -> PathBuf {
    repo().join("docs/workshop")
}

/// One ```` ```sh lab ```` block and the output the page expects from it.
#[derive(Debug, Clone)]
pub struct LabBlock {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub commands: Vec<String>,
    pub expected: Vec<String>,
}

/// Parse a page into its lab blocks.
pub fn parse(page: &str) -> Result<Vec<LabBlock>, String> {
    #[derive(PartialEq)]
    enum Want {
        Anything,
        /// Just closed a lab block: a text block may follow.
        Output,
    }
    let lines: Vec<&str> = page.lines().collect();
    let mut blocks: Vec<LabBlock> = Vec::new();
    let mut want = Want::Anything;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some(info) = line.trim_start().strip_prefix("```") else {
            if want == Want::Output && !line.trim().is_empty() {
                want = Want::Anything;
            }
            i += 1;
            continue;
        };
        let info = info.trim();
        let start = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push(lines[i]);
            i += 1;
        }
        if i == lines.len() {
            return Err(format!("line {}: the block opened here is never closed", start + 1));
        }
        i += 1; // the closing fence
        let words: Vec<&str> = info.split_whitespace().collect();
        if words.first() == Some(&"sh") && words.contains(&"lab") {
            let mut commands = Vec::new();
            for (k, l) in body.iter().enumerate() {
                if let Some(c) = l.strip_prefix("$ ") {
                    commands.push(c.trim().to_string());
                } else if !(l.trim().is_empty() || l.trim_start().starts_with('#')) {
                    return Err(format!("line {}: a lab block holds `$ command` lines and `#` comments only: {l:?}", start + k + 2));
                }
            }
            if commands.is_empty() {
                return Err(format!("line {}: a lab block without commands", start + 1));
            }
            blocks.push(LabBlock { line: start + 1, commands, expected: Vec::new() });
            want = Want::Output;
        } else {
            if want == Want::Output && info == "text" {
                blocks.last_mut().expect("a lab block came first").expected = body.iter().map(|s| s.to_string()).collect();
            }
            want = Want::Anything;
        }
    }
    Ok(blocks)
}

/// One piece of an expected line.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `…`: any characters, also none.
    Any,
    /// `<name>`: one or more non-space characters.
    Word,
}

fn normalize(line: &str) -> String {
    strip_ansi(line).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

fn tokens(pattern: &str) -> Vec<Tok> {
    let chars: Vec<char> = normalize(pattern).chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '…' {
            out.push(Tok::Any);
            i += 1;
            continue;
        }
        if chars[i] == '<' {
            let end = chars[i + 1..].iter().position(|c| *c == '>').map(|p| i + 1 + p);
            if let Some(end) = end {
                let name: String = chars[i + 1..end].iter().collect();
                let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                if first_ok && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
                    out.push(Tok::Word);
                    i = end + 1;
                    continue;
                }
            }
        }
        out.push(Tok::Lit(chars[i]));
        i += 1;
    }
    out
}

fn match_tokens(p: &[Tok], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(Tok::Lit(c)) => s.first() == Some(c) && match_tokens(&p[1..], &s[1..]),
        Some(Tok::Any) => (0..=s.len()).any(|k| match_tokens(&p[1..], &s[k..])),
        Some(Tok::Word) => {
            let run = s.iter().take_while(|c| !c.is_whitespace()).count();
            (1..=run).any(|k| match_tokens(&p[1..], &s[k..]))
        }
    }
}

/// Does an actual output line have the shape of an expected one?
pub fn line_matches(expected: &str, actual: &str) -> bool {
    let a: Vec<char> = normalize(actual).chars().collect();
    match_tokens(&tokens(expected), &a)
}

fn is_any_lines(expected: &str) -> bool {
    expected.trim() == "…"
}

/// Do the actual lines have the shape of the expected ones (`…` lines spanning any number)?
pub fn lines_match(expected: &[String], actual: &[String]) -> bool {
    let (n, m) = (expected.len(), actual.len());
    // ok[i][j]: expected[i..] matches actual[j..].
    let mut ok = vec![vec![false; m + 1]; n + 1];
    ok[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            ok[i][j] = if is_any_lines(&expected[i]) {
                ok[i + 1][j] || (j < m && ok[i][j + 1])
            } else {
                j < m && line_matches(&expected[i], &actual[j]) && ok[i + 1][j + 1]
            };
        }
    }
    ok[0][0]
}

/// A line-by-line diff of expected against actual, aligned on lines that match.
pub fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let eq = |i: usize, j: usize| is_any_lines(&expected[i]) || line_matches(&expected[i], &actual[j]);
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if eq(i, j) { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut out = String::from("--- expected (the page)\n+++ actual\n");
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && eq(i, j) && lcs[i][j] == lcs[i + 1][j + 1] + 1 {
            out.push_str(&format!("  {}\n", actual[j]));
            if is_any_lines(&expected[i]) {
                // `…` spans lines: stay on it while the rest still aligns.
                if i + 1 < n && lcs[i + 1][j + 1] < lcs[i][j + 1] {
                    j += 1;
                    continue;
                }
            }
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", expected[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", actual[j]));
            j += 1;
        }
    }
    out
}

/// Background jobs of a page; stopped when the page ends, however it ends.
struct Jobs(Vec<(String, Child)>);

impl Jobs {
    fn stop(&mut self, n: usize) -> Result<Option<i32>, String> {
        let (cmd, child) = self.0.get_mut(n.wrapping_sub(1)).ok_or_else(|| format!("no background job %{n}"))?;
        if let Ok(Some(s)) = child.try_wait() {
            return Ok(s.code());
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        wait_child(child, STOP_GRACE).ok_or_else(|| format!("`{cmd}` did not stop within {STOP_GRACE:?} of SIGTERM"))
    }

    fn wait(&mut self, n: usize) -> Result<Option<i32>, String> {
        let (cmd, child) = self.0.get_mut(n.wrapping_sub(1)).ok_or_else(|| format!("no background job %{n}"))?;
        wait_child(child, COMMAND_TIMEOUT).ok_or_else(|| format!("`{cmd}` did not finish within {COMMAND_TIMEOUT:?}"))
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        for n in 1..=self.0.len() {
            if self.stop(n).is_err() {
                let child = &mut self.0[n - 1].1;
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Wait for a child; Some(exit code, None if killed by a signal) unless it outlives `limit`.
fn wait_child(child: &mut Child, limit: Duration) -> Option<Option<i32>> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s.code());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The page's directory: `examples/`, `cluster.yaml`, and `fleetform` on the PATH.
struct PageDir {
    dir: tempfile::TempDir,
    path_env: String,
}

impl PageDir {
    fn new() -> PageDir {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&repo().join("examples"), &dir.path().join("examples"));
        std::fs::copy(repo().join("cluster.yaml"), dir.path().join("cluster.yaml")).unwrap();
        let bin = dir.path().join(".bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fleetform"), bin.join("fleetform")).unwrap();
        let path_env = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        PageDir { dir, path_env }
    }

    fn bash(&self, script: &str, vars: &HashMap<String, String>) -> Command {
        let mut c = Command::new("bash");
        c.arg("-c").arg(script).current_dir(self.dir.path()).env("PATH", &self.path_env).envs(vars);
        // Nothing in a lab talks to AWS or picks up the caller's cluster file.
        for v in ["FLEETFORM_CLUSTER", "FLEETFORM_LOG", "RUST_LOG", "AWS_PROFILE", "AWS_ENDPOINT_URL"] {
            c.env_remove(v);
        }
        c.env("NO_COLOR", "1");
        c
    }

    /// Run a foreground command; its stdout and stderr interleaved, as a terminal shows them.
    fn run(&self, script: &str, vars: &HashMap<String, String>) -> Result<(String, Option<i32>), String> {
        let log = self.dir.path().join(".lab-output");
        let f = std::fs::File::create(&log).unwrap();
        let mut child = self
            .bash(script, vars)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        let code = match wait_child(&mut child, COMMAND_TIMEOUT) {
            Some(code) => code,
            None => {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!("timed out after {COMMAND_TIMEOUT:?}; output so far:\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
            }
        };
        Ok((String::from_utf8_lossy(&std::fs::read(&log).unwrap()).to_string(), code))
    }
}

use std::os::unix::process::CommandExt;

/// Run every lab block of a page; the first block whose output does not have the page's
/// shape fails the page, with the command and a diff.
pub fn run_page(name: &str) {
    let _one = ONE_PAGE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let path = workshop().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let blocks = parse(&text).unwrap_or_else(|e| panic!("docs/workshop/{name}: {e}"));
    if name != "README.md" {
        assert!(!blocks.is_empty(), "docs/workshop/{name} has no ```sh lab block");
    }
    let print = std::env::var_os("FLEETFORM_LABS_PRINT").is_some();
    let page = PageDir::new();
    let mut jobs = Jobs(Vec::new());
    let mut vars: HashMap<String, String> = HashMap::new();
    let started = Instant::now();
    let mut mismatched = Vec::new();
    for b in &blocks {
        let mut out = String::new();
        for c in &b.commands {
            let fail = |e: String| -> ! { panic!("docs/workshop/{name}:{}: `$ {c}`: {e}", b.line) };
            if let Some(n) = c.strip_prefix("kill %").and_then(|n| n.trim().parse::<usize>().ok()) {
                jobs.stop(n).unwrap_or_else(|e| fail(e));
            } else if let Some(n) = c.strip_prefix("wait %").and_then(|n| n.trim().parse::<usize>().ok()) {
                if let Some(code) = jobs.wait(n).unwrap_or_else(|e| fail(e)).filter(|c| *c != 0) {
                    out.push_str(&format!("[exit {code}]\n"));
                }
            } else if let Some(bg) = c.strip_suffix('&').filter(|s| !s.ends_with('&')) {
                let child = page
                    .bash(&exec_form(bg.trim()), &vars)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| fail(format!("cannot start: {e}")));
                jobs.0.push((c.clone(), child));
            } else if let Some((var, inner)) = assignment(c) {
                let (o, code) = page.run(inner, &vars).unwrap_or_else(|e| fail(e));
                if let Some(code) = code.filter(|c| *c != 0) {
                    out.push_str(&o);
                    out.push_str(&format!("[exit {code}]\n"));
                }
                vars.insert(var.to_string(), o.trim().to_string());
            } else {
                let (o, code) = page.run(c, &vars).unwrap_or_else(|e| fail(e));
                out.push_str(&o);
                if let Some(code) = code.filter(|c| *c != 0) {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(&format!("[exit {code}]\n"));
                }
            }
        }
        let mut actual: Vec<String> = out.lines().map(|l| strip_ansi(l).trim_end().to_string()).collect();
        // Trailing blank lines are not part of the shape, on either side.
        while actual.last().is_some_and(|l| l.is_empty()) {
            actual.pop();
        }
        let mut expected = b.expected.clone();
        while expected.last().is_some_and(|l| l.trim().is_empty()) {
            expected.pop();
        }
        if print {
            eprintln!("=== docs/workshop/{name}:{}\n$ {}\n{}", b.line, b.commands.join("\n$ "), actual.join("\n"));
        }
        if !lines_match(&expected, &actual) {
            let msg = format!(
                "docs/workshop/{name}:{}: the output does not have the page's shape\ncommands:\n  $ {}\n{}",
                b.line,
                b.commands.join("\n  $ "),
                diff(&expected, &actual)
            );
            if !print {
                panic!("{msg}");
            }
            // Writing a page: show every block, fail at the end.
            eprintln!("{msg}");
            mismatched.push(b.line);
        }
    }
    assert!(mismatched.is_empty(), "docs/workshop/{name}: blocks at lines {mismatched:?} do not match");
    eprintln!("docs/workshop/{name}: {} lab blocks in {:.1}s", blocks.len(), started.elapsed().as_secs_f64());
}

/// `A=1 cmd args` -> `A=1 exec cmd args`: bash becomes the command, so SIGTERM reaches it.
fn exec_form(cmd: &str) -> String {
    let words: Vec<&str> = cmd.split(' ').collect();
    let k = words.iter().take_while(|w| w.split_once('=').is_some_and(|(v, _)| !v.is_empty() && v.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))).count();
    let mut out: Vec<&str> = words[..k].to_vec();
    out.push("exec");
    out.extend(&words[k..]);
    out.join(" ")
}

/// `NAME=$(CMD)` -> (NAME, CMD).
fn assignment(c: &str) -> Option<(&str, &str)> {
    let (var, rest) = c.split_once('=')?;
    let ok = !var.is_empty() && var.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_');
    let inner = rest.strip_prefix("$(")?.strip_suffix(')')?;
    ok.then_some((var, inner))
}

#[test]
fn labs_convention_matches_and_fails_as_documented() {
    let page = "text\n```sh lab\n# a comment\n$ fleetform submit -f x.yaml job.yaml\n```\n\n```text\n<job-id>\n```\n\n```sh aws\n$ not run\n```\n```sh lab\n$ true\n```\n";
    let blocks = parse(page).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].commands, ["fleetform submit -f x.yaml job.yaml"]);
    assert_eq!(blocks[0].expected, ["<job-id>"]);
    assert!(blocks[1].expected.is_empty(), "a lab block without a text block expects no output");
    assert!(parse("```sh lab\nfleetform without dollar\n```\n").is_err());
    assert!(line_matches("clean-text-<id>: 5 of 5 tasks done in …s", "clean-text-20261201-2345-ab12: 5 of 5 tasks done in 1.23s"));
    assert!(line_matches("  worker   10   0", "worker 10 0"), "runs of spaces are one space");
    assert!(!line_matches("<id> done", " done"), "<name> needs at least one character");
    assert!(!line_matches("5 of 5 tasks done", "4 of 5 tasks done"));
    assert!(line_matches("fleetform <FILE>", "fleetform <FILE>"), "upper-case <...> is literal");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(lines_match(&s(&["a", "…", "z"]), &s(&["a", "b", "c", "z"])));
    assert!(lines_match(&s(&["a", "…", "z"]), &s(&["a", "z"])));
    assert!(!lines_match(&s(&["a", "z"]), &s(&["a", "b", "z"])));
    let d = diff(&s(&["a", "x", "z"]), &s(&["a", "y", "z"]));
    assert!(d.contains("- x") && d.contains("+ y") && d.contains("  a"), "{d}");
}

#[test]
fn labs_every_page_is_listed() {
    let mut found: Vec<String> = std::fs::read_dir(workshop())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".md"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = PAGES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "every page of docs/workshop/ is run by a labs_* test");
}

macro_rules! lab_pages {
    ($($test:ident => $page:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_page($page);
            }
        )*
    };
}

lab_pages! {
    labs_readme => "README.md",
    labs_c1_vpc => "C1-vpc.md",
    labs_c2_cluster => "C2-cluster.md",
    labs_c3_jobs => "C3-jobs.md",
    labs_c4_autoscaling => "C4-autoscaling.md",
    labs_c5_spot => "C5-spot.md",
    labs_c6_mixed_market => "C6-mixed-market.md",
    labs_c7_custom_resources => "C7-custom-resources.md",
    labs_c8_fault_tolerance => "C8-fault-tolerance.md",
    labs_c9_benchmark => "C9-benchmark.md",
}
