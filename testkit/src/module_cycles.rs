//! Module cycles: whether the file modules of one crate `use` each other in a ring.
//!
//! A crate a newcomer can live in has layers: a module uses its parent's items and the
//! modules below it, and nothing below reaches back up. [`find_module_cycles`] reads a
//! crate's `src/` directory and returns every strongly connected component of more than
//! one file module, with the references that form it, so a failure says which `use` to
//! move. Std only: a small tokenizer that knows comments, strings, char literals and
//! attributes stands in for a Rust parser.
//!
//! - Files map to module paths: `lib.rs` and `main.rs` are the crate root, `foo.rs` and
//!   `foo/mod.rs` are `foo`, `foo/bar.rs` is `foo::bar` (`src/bin/` holds other crates and
//!   is not read).
//! - References are paths that start with `crate::`, `super::` or `self::` (in `use`
//!   items, grouped forms such as `use crate::{a, b::c}` included, and in expressions and
//!   types), with the name of a child file module (`model::Status` in `observe/mod.rs`),
//!   or with a module a `use` brought in (`use crate::aws;` then `aws::context::sdk_config`).
//! - Test code is not read: items under a `#[cfg(test)]` (or `#[cfg(all(test, ..))]`)
//!   attribute, and files that are test modules (`tests.rs`, `*_tests.rs`, a module
//!   declared under `#[cfg(test)]`, and everything below them).
//! - Each reference resolves to the longest prefix of its path that is a file module. A
//!   name that module only imports (`pub use model::Status;`, `pub use model::*;`) resolves
//!   on to the module that defines it, and a `pub use` nothing else in its file uses is not
//!   an edge, so a facade `mod.rs` does not tie its users and its children into one ring.
//! - A reference to the module itself or to one of its ancestors is not an edge: a child
//!   may use its parent's items.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A module path inside the crate; empty for the crate root.
type ModPath = Vec<String>;

/// One reference from a file module to another that is part of a cycle.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModuleEdge {
    /// The module holding the reference, e.g. `autoscaler::decide` (`crate` for the root).
    pub from: String,
    /// The file module it resolves to.
    pub to: String,
    /// The file, relative to the crate's directory's parent (`reconciler/src/jobs.rs`).
    pub file: PathBuf,
    pub line: usize,
    /// The reference as written, e.g. `use super::model::Pending` or `crate::local::spawn`.
    pub reference: String,
}

/// A strongly connected component of file modules: each reaches every other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleCycle {
    /// Module paths, sorted.
    pub modules: Vec<String>,
    /// Every reference between two of those modules, sorted by (from, to, file, line).
    pub edges: Vec<ModuleEdge>,
}

impl fmt::Display for ModuleCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cycle between {}:", self.modules.join(", "))?;
        let mut pair: Option<(&str, &str)> = None;
        for edge in &self.edges {
            if pair != Some((&edge.from, &edge.to)) {
                writeln!(f, "  {} -> {}", edge.from, edge.to)?;
                pair = Some((&edge.from, &edge.to));
            }
            writeln!(
                f,
                "      {}:{}: {}",
                edge.file.display(),
                edge.line,
                edge.reference
            )?;
        }
        Ok(())
    }
}

/// The module cycles of the crate whose sources are in `src_dir`, sorted by their first
/// module. Empty when its modules form layers.
pub fn find_module_cycles(src_dir: &Path) -> io::Result<Vec<ModuleCycle>> {
    let (nodes, edges) = module_graph(src_dir)?;
    let index: HashMap<&ModPath, usize> = nodes.iter().enumerate().map(|(i, m)| (m, i)).collect();
    let mut adjacency: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); nodes.len()];
    for (from, to, _) in &edges {
        adjacency[index[from]].insert(index[to]);
    }

    let mut cycles = Vec::new();
    for component in strongly_connected(&adjacency) {
        if component.len() < 2 {
            continue;
        }
        let members: HashSet<usize> = component.iter().copied().collect();
        let mut modules: Vec<String> = component.iter().map(|&i| show(&nodes[i])).collect();
        modules.sort();
        let mut cycle_edges: Vec<ModuleEdge> = edges
            .iter()
            .filter(|(from, to, _)| members.contains(&index[from]) && members.contains(&index[to]))
            .map(|(_, _, e)| e.clone())
            .collect();
        cycle_edges.sort();
        cycle_edges.dedup();
        cycles.push(ModuleCycle {
            modules,
            edges: cycle_edges,
        });
    }
    cycles.sort_by(|a, b| a.modules.cmp(&b.modules));
    Ok(cycles)
}

/// A reference from one file module to another: (from, to, where and how).
type Link = (ModPath, ModPath, ModuleEdge);

/// The crate's non-test file modules (sorted) and every reference between two of them.
fn module_graph(src_dir: &Path) -> io::Result<(Vec<ModPath>, Vec<Link>)> {
    let crate_dir = src_dir.parent().unwrap_or(src_dir);
    let shown_from = crate_dir.parent().unwrap_or(crate_dir);
    let mut files = Vec::new();
    collect_rs_files(src_dir, src_dir, &mut files)?;
    files.sort();

    let modules: HashSet<ModPath> = files.iter().map(|(_, m)| m.clone()).collect();
    let mut parsed = Vec::new();
    for (path, module) in files {
        let text = fs::read_to_string(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let shown = path.strip_prefix(shown_from).unwrap_or(&path).to_path_buf();
        parsed.push(parse_file(shown, module, &text, &modules));
    }

    let mut test_modules: HashSet<ModPath> = HashSet::new();
    for file in &parsed {
        test_modules.extend(file.test_children.iter().cloned());
        if file.whole_file_is_test {
            test_modules.insert(file.module.clone());
        }
    }
    let is_test = |m: &ModPath| {
        (1..=m.len()).any(|n| {
            let last = &m[n - 1];
            last == "tests" || last.ends_with("_tests") || test_modules.contains(&m[..n])
        })
    };
    let parsed: Vec<FileFacts> = parsed.into_iter().filter(|f| !is_test(&f.module)).collect();

    let mut tables: HashMap<ModPath, Table> = HashMap::new();
    for file in &parsed {
        let table = tables.entry(file.module.clone()).or_default();
        table.defs.extend(file.defs.iter().cloned());
        table
            .imports
            .extend(file.imports.iter().map(|(k, v)| (k.clone(), v.clone())));
        table.globs.extend(file.globs.iter().cloned());
    }
    let resolver = Resolver { tables: &tables };

    let mut edges = Vec::new();
    for file in &parsed {
        for r in &file.refs {
            if r.pure_reexport(file) {
                continue;
            }
            let Some(target) = resolver.resolve(&r.abs, 0) else {
                continue;
            };
            if file.module.starts_with(&target) || !tables.contains_key(&target) {
                continue; // itself, an ancestor, or a test module
            }
            let edge = ModuleEdge {
                from: show(&file.module),
                to: show(&target),
                file: file.path.clone(),
                line: r.line,
                reference: r.text.clone(),
            };
            edges.push((file.module.clone(), target, edge));
        }
    }
    let mut nodes: Vec<ModPath> = tables.into_keys().collect();
    nodes.sort();
    Ok((nodes, edges))
}

/// Panics, listing every cycle and the references that form it, unless the modules of
/// the crate in `src_dir` form layers. For one `#[test]` per crate.
pub fn assert_no_module_cycles(src_dir: &Path) {
    let cycles = find_module_cycles(src_dir)
        .unwrap_or_else(|e| panic!("reading the modules of {}: {e}", src_dir.display()));
    if cycles.is_empty() {
        return;
    }
    let mut message = format!(
        "{} module cycle(s) in {}. A module must not reach back up to a module that uses it: move \
         the shared item down into the module that owns the concept, and the `use` with it.\n\n",
        cycles.len(),
        src_dir.display()
    );
    for cycle in &cycles {
        message.push_str(&cycle.to_string());
        message.push('\n');
    }
    panic!("{message}");
}

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

fn collect_rs_files(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, ModPath)>) -> io::Result<()> {
    let entries = fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            if dir == root && path.file_name().is_some_and(|n| n == "bin") {
                continue; // src/bin/*.rs are crates of their own
            }
            collect_rs_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let mut module: ModPath = relative
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            let file = module.pop().unwrap_or_default();
            match file.as_str() {
                "mod.rs" => {}
                "lib.rs" | "main.rs" if module.is_empty() => {}
                _ => module.push(file.trim_end_matches(".rs").to_string()),
            }
            out.push((path, module));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A string, char or number literal (or a lifetime): never a path.
    Lit,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn tokenize(text: &str) -> Vec<Token> {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let is_ident_start = |ch: char| ch == '_' || ch.is_alphabetic();
    let is_ident_char = |ch: char| ch == '_' || ch.is_alphanumeric();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let start_line = line;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_quoted(&c, i, '"', &mut line);
            out.push(Token {
                tok: Tok::Lit,
                line: start_line,
            });
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                i = skip_quoted(&c, i, '\'', &mut line);
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1; // a lifetime or label
                while i < c.len() && is_ident_char(c[i]) {
                    i += 1;
                }
            }
            out.push(Token {
                tok: Tok::Lit,
                line: start_line,
            });
        } else if ch.is_ascii_digit() {
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Lit,
                line: start_line,
            });
        } else if is_ident_start(ch) {
            let begin = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            let word: String = c[begin..i].iter().collect();
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            if raw_prefix && (at(i) == '"' || (at(i) == '#' && matches!(at(i + 1), '"' | '#'))) {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1; // the opening quote
                while i < c.len() {
                    if c[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Lit,
                    line: start_line,
                });
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = skip_quoted(&c, i, '"', &mut line);
                out.push(Token {
                    tok: Tok::Lit,
                    line: start_line,
                });
            } else if word == "b" && at(i) == '\'' {
                i = skip_quoted(&c, i, '\'', &mut line);
                out.push(Token {
                    tok: Tok::Lit,
                    line: start_line,
                });
            } else if word == "r" && at(i) == '#' && is_ident_start(at(i + 1)) {
                let begin = i + 1;
                i += 1;
                while i < c.len() && is_ident_char(c[i]) {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(c[begin..i].iter().collect()),
                    line: start_line,
                });
            } else {
                out.push(Token {
                    tok: Tok::Ident(word),
                    line: start_line,
                });
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line: start_line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line: start_line,
            });
            i += 1;
        }
    }
    out
}

/// The index after the literal opened by the quote at `i`, with backslash escapes.
fn skip_quoted(c: &[char], mut i: usize, quote: char, line: &mut usize) -> usize {
    i += 1;
    while i < c.len() {
        match c[i] {
            '\\' => {
                *line += usize::from(c.get(i + 1) == Some(&'\n'));
                i += 2;
            }
            ch if ch == quote => return i + 1,
            ch => {
                *line += usize::from(ch == '\n');
                i += 1;
            }
        }
    }
    i
}

// ---------------------------------------------------------------------------------------
// One file

/// What one file says about its module.
struct FileFacts {
    path: PathBuf,
    module: ModPath,
    /// `#![cfg(test)]` at the top.
    whole_file_is_test: bool,
    /// Children declared under `#[cfg(test)]`: `#[cfg(test)] mod tests;`.
    test_children: Vec<ModPath>,
    /// Names the file defines at module level.
    defs: HashSet<String>,
    /// Module-level `use` names: the name → its absolute path inside the crate, or `None`
    /// for another crate's item.
    imports: HashMap<String, Option<ModPath>>,
    /// Module-level glob imports inside the crate (`use model::*;`).
    globs: Vec<ModPath>,
    refs: Vec<Ref>,
    /// Every file module a `use` in the file (at any depth) brings in by name, for paths
    /// that start with one: `use crate::aws; .. aws::context::sdk_config()`.
    aliases: HashMap<String, ModPath>,
    /// Paths in code that start with some other name, with their lines: resolved against
    /// `aliases` once the whole file is read.
    other_paths: Vec<(Vec<String>, usize)>,
    /// How often each identifier occurs outside `use` items (non-test code).
    idents_in_code: HashMap<String, usize>,
}

struct Ref {
    abs: ModPath,
    line: usize,
    text: String,
    /// For a module-level `pub use` of a name (not a glob): that name.
    pub_import: Option<String>,
}

impl Ref {
    /// A `pub use` that only re-exports: nothing else in its file names it.
    fn pure_reexport(&self, file: &FileFacts) -> bool {
        self.pub_import
            .as_ref()
            .is_some_and(|name| file.idents_in_code.get(name).copied().unwrap_or(0) == 0)
    }
}

struct Parser<'a> {
    toks: &'a [Token],
    modules: &'a HashSet<ModPath>,
    facts: FileFacts,
    /// One entry per open `{`: the inline module it opens, if any.
    frames: Vec<Option<String>>,
}

fn parse_file(path: PathBuf, module: ModPath, text: &str, modules: &HashSet<ModPath>) -> FileFacts {
    let toks = tokenize(text);
    let mut parser = Parser {
        toks: &toks,
        modules,
        facts: FileFacts {
            path,
            module,
            whole_file_is_test: false,
            test_children: Vec::new(),
            defs: HashSet::new(),
            imports: HashMap::new(),
            globs: Vec::new(),
            refs: Vec::new(),
            aliases: HashMap::new(),
            other_paths: Vec::new(),
            idents_in_code: HashMap::new(),
        },
        frames: Vec::new(),
    };
    parser.run();
    let mut facts = parser.facts;
    for (segments, line) in std::mem::take(&mut facts.other_paths) {
        if let Some(target) = facts.aliases.get(&segments[0]) {
            let abs = target.iter().chain(&segments[1..]).cloned().collect();
            facts.refs.push(Ref {
                abs,
                line,
                text: segments.join("::"),
                pub_import: None,
            });
        }
    }
    facts
}

const DEFINING_KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "union", "trait", "type", "const", "static", "mod",
];

impl Parser<'_> {
    fn tok(&self, i: usize) -> Option<&Tok> {
        self.toks.get(i).map(|t| &t.tok)
    }

    fn ident(&self, i: usize) -> Option<&str> {
        match self.tok(i) {
            Some(Tok::Ident(s)) => Some(s),
            _ => None,
        }
    }

    fn is(&self, i: usize, punct: char) -> bool {
        self.tok(i) == Some(&Tok::Punct(punct))
    }

    /// The module the code at the current position is in (inline modules included).
    fn scope(&self) -> ModPath {
        let mut scope = self.facts.module.clone();
        scope.extend(self.frames.iter().flatten().cloned());
        scope
    }

    fn at_file_level(&self) -> bool {
        self.frames.is_empty()
    }

    fn run(&mut self) {
        let mut i = 0;
        let mut under_test_cfg = false;
        let mut opens_inline_module: Option<String> = None;
        while i < self.toks.len() {
            if self.is(i, '#') {
                let inner = self.is(i + 1, '!');
                let open = if inner { i + 2 } else { i + 1 };
                if self.is(open, '[') {
                    let close = self.matching(open);
                    if cfg_requires_test(&self.toks[open + 1..close.min(self.toks.len())]) {
                        if !inner {
                            under_test_cfg = true;
                        } else if self.at_file_level() {
                            self.facts.whole_file_is_test = true;
                            return;
                        }
                    }
                    i = close + 1;
                    continue;
                }
            }
            if under_test_cfg {
                under_test_cfg = false;
                if let Some(name) = self.declared_module(i) {
                    let mut child = self.scope();
                    child.push(name);
                    self.facts.test_children.push(child);
                }
                i = self.skip_item(i);
                continue;
            }
            match self.tok(i).cloned() {
                Some(Tok::Punct('{')) => {
                    self.frames.push(opens_inline_module.take());
                    i += 1;
                }
                Some(Tok::Punct('}')) => {
                    self.frames.pop();
                    i += 1;
                }
                Some(Tok::Ident(word))
                    if word == "use" && self.tok(i.wrapping_sub(1)) != Some(&Tok::PathSep) =>
                {
                    i = self.use_item(i);
                }
                Some(Tok::Ident(word)) if DEFINING_KEYWORDS.contains(&word.as_str()) => {
                    let mut name_at = i + 1;
                    if self.ident(name_at) == Some("mut") {
                        name_at += 1;
                    }
                    match self.ident(name_at).map(str::to_string) {
                        Some(name) if !DEFINING_KEYWORDS.contains(&name.as_str()) => {
                            if self.at_file_level() {
                                self.facts.defs.insert(name.clone());
                            }
                            if word == "mod" && self.is(name_at + 1, '{') {
                                opens_inline_module = Some(name);
                            }
                            i = name_at + 1;
                        }
                        _ => i += 1,
                    }
                }
                Some(Tok::Ident(word)) if word == "macro_rules" && self.is(i + 1, '!') => {
                    if let (Some(name), true) = (self.ident(i + 2), self.at_file_level()) {
                        self.facts.defs.insert(name.to_string());
                    }
                    i += 3;
                }
                Some(Tok::Ident(word)) => {
                    *self.facts.idents_in_code.entry(word.clone()).or_default() += 1;
                    i = self.code_path(i, &word);
                }
                _ => i += 1,
            }
        }
    }

    /// The index of the bracket closing the one at `open`.
    fn matching(&self, open: usize) -> usize {
        let mut depth = 0usize;
        for j in open..self.toks.len() {
            match self.tok(j) {
                Some(Tok::Punct('(' | '[' | '{')) => depth += 1,
                Some(Tok::Punct(')' | ']' | '}')) => {
                    depth -= 1;
                    if depth == 0 {
                        return j;
                    }
                }
                _ => {}
            }
        }
        self.toks.len()
    }

    /// `mod name;` or `mod name { .. }` at `i`, after any visibility: the name.
    fn declared_module(&self, mut i: usize) -> Option<String> {
        if self.ident(i) == Some("pub") {
            i += 1;
            if self.is(i, '(') {
                i = self.matching(i) + 1;
            }
        }
        (self.ident(i) == Some("mod"))
            .then(|| self.ident(i + 1).map(str::to_string))
            .flatten()
    }

    /// The index after the item starting at `i`: after its `;` or its closing `}`, or at
    /// the bracket that closes the block it is in.
    fn skip_item(&self, i: usize) -> usize {
        let mut depth = 0i32;
        for j in i..self.toks.len() {
            match self.tok(j) {
                Some(Tok::Punct('(' | '[' | '{')) => depth += 1,
                Some(Tok::Punct(close @ (')' | ']' | '}'))) => {
                    depth -= 1;
                    if depth < 0 {
                        return j;
                    }
                    if depth == 0 && *close == '}' {
                        return j + 1;
                    }
                }
                Some(Tok::Punct(';')) if depth == 0 => return j + 1,
                _ => {}
            }
        }
        self.toks.len()
    }

    /// A path in code that starts at `i` with `first`: recorded if it names a module of
    /// this crate. Returns the index to go on from.
    fn code_path(&mut self, i: usize, first: &str) -> usize {
        let previous = self.tok(i.wrapping_sub(1));
        let continues = matches!(previous, Some(Tok::PathSep | Tok::Punct('.' | '$')));
        if continues || self.tok(i + 1) != Some(&Tok::PathSep) {
            return i + 1;
        }
        let scope = self.scope();
        let starts_in_crate = matches!(first, "crate" | "self" | "super") || {
            let mut child = scope.clone();
            child.push(first.to_string());
            self.modules.contains(&child)
        };
        let mut segments = vec![first.to_string()];
        let mut j = i + 1;
        while self.tok(j) == Some(&Tok::PathSep) {
            match self.ident(j + 1).map(str::to_string) {
                Some(next) => {
                    *self.facts.idents_in_code.entry(next.clone()).or_default() += 1;
                    segments.push(next);
                    j += 2;
                }
                None => break, // `::<` or `::{`
            }
        }
        if !starts_in_crate {
            self.facts.other_paths.push((segments, self.toks[i].line));
        } else if let Some(abs) = absolute(&segments, &scope, self.modules) {
            self.facts.refs.push(Ref {
                abs,
                line: self.toks[i].line,
                text: segments.join("::"),
                pub_import: None,
            });
        }
        j
    }

    /// The `use` item whose keyword is at `i`: its references, and at module level its
    /// imports. Returns the index after its `;`.
    fn use_item(&mut self, i: usize) -> usize {
        let is_pub = self.ident(i.wrapping_sub(1)) == Some("pub")
            || (self.is(i.wrapping_sub(1), ')')
                && (2..=8).any(|back| {
                    self.ident(i.wrapping_sub(back)) == Some("pub")
                        && self.is((i + 1).wrapping_sub(back), '(')
                }));
        let line = self.toks[i].line;
        let mut j = i + 1;
        let external = self.tok(j) == Some(&Tok::PathSep);
        let mut leaves = Vec::new();
        self.use_tree(&mut j, Vec::new(), &mut leaves);
        while j < self.toks.len() && !self.is(j, ';') {
            j += 1;
        }
        if external {
            return j + 1;
        }
        let scope = self.scope();
        let module_level = self.at_file_level();
        for leaf in leaves {
            let abs = absolute(&leaf.segments, &scope, self.modules);
            if let (Some(alias), Some(abs)) = (&leaf.alias, &abs) {
                if self.modules.contains(abs) {
                    self.facts.aliases.insert(alias.clone(), abs.clone());
                }
            }
            if module_level {
                match (&leaf.alias, &abs) {
                    (Some(alias), _) if alias != "_" => {
                        self.facts.imports.insert(alias.clone(), abs.clone());
                    }
                    (None, Some(abs)) => self.facts.globs.push(abs.clone()),
                    _ => {}
                }
            }
            if let Some(abs) = abs {
                let mut text = format!("use {}", leaf.segments.join("::"));
                if leaf.alias.is_none() {
                    text.push_str("::*");
                }
                let pub_import = if is_pub && module_level {
                    leaf.alias.clone()
                } else {
                    None
                };
                self.facts.refs.push(Ref {
                    abs,
                    line,
                    text,
                    pub_import,
                });
            }
        }
        j + 1
    }

    fn use_tree(&self, j: &mut usize, mut segments: Vec<String>, leaves: &mut Vec<UseLeaf>) {
        loop {
            match self.tok(*j) {
                Some(Tok::PathSep) => *j += 1,
                Some(Tok::Ident(s)) if s != "as" => {
                    segments.push(s.clone());
                    *j += 1;
                    if self.tok(*j) != Some(&Tok::PathSep) {
                        break;
                    }
                }
                Some(Tok::Punct('*')) => {
                    *j += 1;
                    leaves.push(UseLeaf {
                        segments,
                        alias: None,
                    });
                    return;
                }
                Some(Tok::Punct('{')) => {
                    *j += 1;
                    while *j < self.toks.len() && !self.is(*j, '}') {
                        let before = *j;
                        self.use_tree(j, segments.clone(), leaves);
                        if self.is(*j, ',') {
                            *j += 1;
                        }
                        if *j == before {
                            *j += 1; // not a use tree: do not loop on it
                        }
                    }
                    *j += 1;
                    return;
                }
                _ => break,
            }
        }
        let mut alias = segments.last().cloned();
        if self.ident(*j) == Some("as") {
            alias = self.ident(*j + 1).map(str::to_string);
            *j += 2;
        }
        if segments.last().is_some_and(|s| s == "self") {
            segments.pop();
            if alias.as_deref() == Some("self") {
                alias = segments.last().cloned();
            }
        }
        if !segments.is_empty() {
            leaves.push(UseLeaf { segments, alias });
        }
    }
}

/// One path a `use` item brings in; `alias` is `None` for a glob.
struct UseLeaf {
    segments: Vec<String>,
    alias: Option<String>,
}

/// A path as written, made absolute inside the crate; `None` when it leaves the crate (or
/// names something local such as an enum's variants).
fn absolute(segments: &[String], scope: &[String], modules: &HashSet<ModPath>) -> Option<ModPath> {
    let first = segments.first()?;
    match first.as_str() {
        "crate" => Some(segments[1..].to_vec()),
        "self" => Some(scope.iter().chain(&segments[1..]).cloned().collect()),
        "super" => {
            let ups = segments.iter().take_while(|s| *s == "super").count();
            let base = scope.len().checked_sub(ups)?;
            Some(
                scope[..base]
                    .iter()
                    .chain(&segments[ups..])
                    .cloned()
                    .collect(),
            )
        }
        _ => {
            let mut child = scope.to_vec();
            child.push(first.clone());
            modules
                .contains(&child)
                .then(|| scope.iter().chain(segments).cloned().collect())
        }
    }
}

/// Whether a `#[...]` attribute's tokens are a `cfg` that holds only in test builds:
/// `cfg(test)`, `cfg(all(test, ..))`, `cfg(any(test, all(test, ..)))`.
fn cfg_requires_test(tokens: &[Token]) -> bool {
    let tok = |i: usize| tokens.get(i).map(|t| &t.tok);
    if tok(0) != Some(&Tok::Ident("cfg".into())) || tok(1) != Some(&Tok::Punct('(')) {
        return false;
    }
    fn predicate(tokens: &[Token], i: &mut usize) -> bool {
        let tok = |i: usize| tokens.get(i).map(|t| &t.tok);
        let name = match tok(*i) {
            Some(Tok::Ident(name)) => name.clone(),
            _ => {
                *i += 1;
                return false;
            }
        };
        *i += 1;
        match tok(*i) {
            Some(Tok::Punct('(')) => {
                *i += 1;
                let mut args = Vec::new();
                while *i < tokens.len() && tok(*i) != Some(&Tok::Punct(')')) {
                    args.push(predicate(tokens, i));
                    if tok(*i) == Some(&Tok::Punct(',')) {
                        *i += 1;
                    }
                }
                *i += 1;
                match name.as_str() {
                    "all" => args.iter().any(|&a| a),
                    "any" => !args.is_empty() && args.iter().all(|&a| a),
                    _ => false,
                }
            }
            Some(Tok::Punct('=')) => {
                *i += 2;
                false
            }
            _ => name == "test",
        }
    }
    predicate(tokens, &mut 2)
}

// ---------------------------------------------------------------------------------------
// Resolution

#[derive(Default)]
struct Table {
    defs: HashSet<String>,
    imports: HashMap<String, Option<ModPath>>,
    globs: Vec<ModPath>,
}

struct Resolver<'a> {
    tables: &'a HashMap<ModPath, Table>,
}

/// How many imports one path is followed through before giving up (a glob pair such as
/// `pub use child::*` with `use super::*` would loop).
const MAX_HOPS: usize = 16;

impl Resolver<'_> {
    /// The file module an absolute path lands in, following imports; `None` when it
    /// leads out of the crate.
    fn resolve(&self, abs: &[String], hops: usize) -> Option<ModPath> {
        let prefix = (0..=abs.len())
            .rev()
            .find(|&n| self.tables.contains_key(&abs[..n]))?;
        let module = abs[..prefix].to_vec();
        if prefix == abs.len() || hops >= MAX_HOPS {
            return Some(module);
        }
        let name = &abs[prefix];
        let table = &self.tables[&module];
        if table.defs.contains(name) {
            return Some(module);
        }
        if let Some(target) = table.imports.get(name) {
            let target = target.as_ref()?;
            let onward: ModPath = target.iter().chain(&abs[prefix + 1..]).cloned().collect();
            return self.resolve(&onward, hops + 1);
        }
        for glob in &table.globs {
            if self.names(glob, name, hops + 1) {
                let onward: ModPath = glob.iter().chain(&abs[prefix..]).cloned().collect();
                return self.resolve(&onward, hops + 1);
            }
        }
        Some(module)
    }

    /// Whether `module` defines, imports or has a child module called `name`.
    fn names(&self, module: &[String], name: &str, hops: usize) -> bool {
        let Some(table) = self.tables.get(module) else {
            return false;
        };
        let mut child = module.to_vec();
        child.push(name.to_string());
        hops < MAX_HOPS
            && (table.defs.contains(name)
                || table.imports.contains_key(name)
                || self.tables.contains_key(&child)
                || table
                    .globs
                    .iter()
                    .any(|g| g.as_slice() != module && self.names(g, name, hops + 1)))
    }
}

/// Tarjan's strongly connected components, each as node indices.
fn strongly_connected(adjacency: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        adjacency: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        components: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.adjacency[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(w_index) if s.on_stack[w] => s.low[v] = s.low[v].min(w_index),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let n = adjacency.len();
    let mut state = State {
        adjacency,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            visit(&mut state, v);
        }
    }
    state.components
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every edge, as `from -> {to}`: for the resolution rules, cycle or not.
    fn module_edges(src_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (_, _, edge) in module_graph(src_dir).unwrap().1 {
            out.entry(edge.from).or_default().insert(edge.to);
        }
        out
    }

    /// A crate's `src/` in a fresh temporary directory, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(files: &[(&str, &str)]) -> Tree {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let root = std::env::temp_dir().join(format!(
                "fleetform-module-cycles-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            for (path, text) in files {
                let path = root.join("demo/src").join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, text).unwrap();
            }
            Tree(root)
        }

        fn src(&self) -> PathBuf {
            self.0.join("demo/src")
        }

        fn cycles(&self) -> Vec<ModuleCycle> {
            find_module_cycles(&self.src()).unwrap()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn two_modules_that_use_each_other_are_a_cycle_with_both_uses() {
        let tree = Tree::new(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            (
                "a.rs",
                "use crate::b::Bee;\npub struct Ay;\npub fn f(_: Bee) {}\n",
            ),
            (
                "b.rs",
                "pub struct Bee;\n\npub fn g() -> crate::a::Ay { crate::a::Ay }\n",
            ),
        ]);
        let cycles = tree.cycles();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b"]);
        assert_eq!(
            cycles[0].to_string(),
            "cycle between a, b:\n  a -> b\n      demo/src/a.rs:1: use crate::b::Bee\n  b -> a\n      \
             demo/src/b.rs:3: crate::a::Ay\n"
        );
        let panic = std::panic::catch_unwind(|| assert_no_module_cycles(&tree.src())).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains("1 module cycle(s)"), "{message}");
        assert!(
            message.contains("demo/src/a.rs:1: use crate::b::Bee"),
            "{message}"
        );
    }

    #[test]
    fn a_ring_through_grouped_uses_super_and_self_paths_is_found() {
        // top -> inner::x (grouped use) -> inner::y (super::) -> top (self:: in inner)
        let tree = Tree::new(&[
            ("lib.rs", "pub mod top;\npub mod inner;\n"),
            (
                "top.rs",
                "use crate::{inner::x::Ex, inner};\npub struct Top;\n",
            ),
            (
                "inner/mod.rs",
                "pub mod x;\npub mod y;\npub use self::y::Why;\n",
            ),
            (
                "inner/x.rs",
                "pub struct Ex;\npub fn f() { super::y::g(); }\n",
            ),
            (
                "inner/y.rs",
                "pub struct Why;\npub fn g() -> super::super::top::Top { todo!() }\n",
            ),
        ]);
        let cycles = tree.cycles();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["inner::x", "inner::y", "top"]);
        let pairs: Vec<(&str, &str)> = cycles[0].edges.iter().map(|e| (&*e.from, &*e.to)).collect();
        assert!(pairs.contains(&("top", "inner::x")), "{pairs:?}");
        assert!(pairs.contains(&("inner::x", "inner::y")), "{pairs:?}");
        assert!(pairs.contains(&("inner::y", "top")), "{pairs:?}");
    }

    #[test]
    fn a_path_through_an_imported_module_name_is_followed() {
        let tree = Tree::new(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "use crate::b;\npub fn f() { b::inner::g() }\n"),
            ("b/mod.rs", "pub mod inner;\n"),
            (
                "b/inner.rs",
                "pub fn g() {}\npub fn h() { crate::a::f() }\n",
            ),
        ]);
        let cycles = tree.cycles();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b::inner"]);
        assert!(
            cycles[0]
                .edges
                .iter()
                .any(|e| e.reference == "b::inner::g" && e.line == 2),
            "{cycles:?}"
        );
    }

    #[test]
    fn a_child_may_use_its_parent_and_the_parent_its_child() {
        let tree = Tree::new(&[
            ("lib.rs", "pub mod outer;\npub fn root_helper() {}\n"),
            (
                "outer/mod.rs",
                "pub mod leaf;\npub struct Shared;\npub fn f() { leaf::g(); }\n",
            ),
            (
                "outer/leaf.rs",
                "use super::Shared;\npub fn g() { crate::root_helper(); let _ = Shared; }\n",
            ),
        ]);
        assert_eq!(tree.cycles(), []);
    }

    #[test]
    fn test_code_is_not_read() {
        let tree = Tree::new(&[
            ("lib.rs", "pub mod a;\npub mod b;\n#[cfg(test)]\nmod b_tests;\n"),
            ("a.rs", "pub fn f() { crate::b::g() }\n"),
            (
                "b.rs",
                "pub fn g() {}\n\n#[cfg(test)]\nmod tests {\n    use crate::a::f;\n    #[test]\n    fn t() { f() }\n}\n\
                 #[cfg(all(test, not(feature = \"x\")))]\nfn helper() { crate::a::f() }\n\
                 #[cfg(test)]\nmod more_tests;\n",
            ),
            ("b/more_tests.rs", "use crate::a::f;\n"),
            ("b/tests.rs", "use crate::a::f;\n"),
            ("b_tests.rs", "use crate::a::f;\n"),
        ]);
        assert_eq!(tree.cycles(), []);
    }

    #[test]
    fn code_under_a_cfg_that_holds_outside_tests_is_read() {
        let tree = Tree::new(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "pub fn f() { crate::b::g() }\n"),
            ("b.rs", "pub fn g() {}\n#[cfg(any(test, feature = \"conformance\"))]\npub fn h() { crate::a::f() }\n"),
        ]);
        assert_eq!(tree.cycles().len(), 1);
    }

    #[test]
    fn comments_strings_and_other_crates_are_not_references() {
        let tree = Tree::new(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "pub fn f() { crate::b::g() }\n"),
            (
                "b.rs",
                "//! See `crate::a::f`.\n/* crate::a::f /* nested */ crate::a::f */\n\
                 pub fn g() { let _ = \"crate::a::f\"; let _ = r#\"crate::a::f\"#; let _c = '\"'; }\n\
                 pub fn h<'a>(x: &'a str) -> &'a str { other_crate::a::f(); std::a::f(); x }\n",
            ),
        ]);
        assert_eq!(tree.cycles(), []);
    }

    #[test]
    fn a_reexported_name_resolves_to_the_module_that_defines_it() {
        // `facade` re-exports `model::Thing` and `worker::Worker`; `model` using
        // `super::Helper` (defined in the facade) is a child using its parent. Without
        // following the re-exports, worker -> facade (ancestor, ignored) would hide the
        // edge, and other -> facade -> worker would invent one.
        let tree = Tree::new(&[
            ("lib.rs", "pub mod facade;\npub mod other;\n"),
            (
                "facade/mod.rs",
                "pub mod model;\npub mod worker;\npub use model::*;\npub use worker::Worker;\npub struct Helper;\n",
            ),
            ("facade/model.rs", "pub struct Thing;\npub fn f() { let _ = super::Helper; }\n"),
            ("facade/worker.rs", "use super::Thing;\npub struct Worker;\npub fn w() { crate::other::o(); }\n"),
            ("other.rs", "use crate::facade::Thing;\npub fn o() {}\n"),
        ]);
        assert_eq!(tree.cycles(), []);
        let edges = format!("{:?}", module_edges(&tree.src()));
        assert_eq!(
            edges,
            r#"{"facade": {"facade::model"}, "facade::worker": {"facade::model", "other"}, "other": {"facade::model"}}"#
        );

        // Now model reaches the worker through the facade's re-export: a real ring.
        let tree = Tree::new(&[
            ("lib.rs", "pub mod facade;\n"),
            (
                "facade/mod.rs",
                "pub mod model;\npub mod worker;\npub use worker::Worker;\n",
            ),
            (
                "facade/model.rs",
                "pub struct Thing;\npub fn f(_: super::Worker) {}\n",
            ),
            (
                "facade/worker.rs",
                "use super::model::Thing;\npub struct Worker(Thing);\n",
            ),
        ]);
        let cycles = tree.cycles();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["facade::model", "facade::worker"]);
        assert!(
            cycles[0]
                .edges
                .iter()
                .any(|e| e.reference == "super::Worker"),
            "{cycles:?}"
        );
    }

    #[test]
    fn a_pub_use_the_module_also_calls_is_an_edge() {
        let tree = Tree::new(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "pub use crate::b::g;\npub fn f() { g() }\n"),
            ("b.rs", "pub fn g() {}\npub fn h() { crate::a::f() }\n"),
        ]);
        assert_eq!(tree.cycles().len(), 1);
    }
}
