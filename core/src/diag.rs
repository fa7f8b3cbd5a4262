//! Diagnostics: every problem found in a spec file, each pointing at file:line:column.
//!
//! Loading never stops at the first problem: syntax errors end parsing, but unknown keys,
//! wrong types and semantic errors are all collected so a user fixes them in one go
//! (Vector's `config::compiler` does the same).

use std::collections::BTreeMap;
use std::fmt;

use saphyr_parser::{Event, Parser};
use serde::de::DeserializeOwned;

/// One step of a path into a YAML document: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted path such as `available_node_types.x86_worker_node.min_workers` or
/// `network.private_subnets[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.into()));
        Self(v)
    }
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Self(v)
    }
    /// Parse the dotted form back (keys containing dots are not used by our specs).
    pub fn parse(s: &str) -> Self {
        let mut out = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(b) = rest.find('[') {
                if b > 0 {
                    out.push(Seg::Key(rest[..b].to_string()));
                }
                rest = &rest[b..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let end = stripped.find(']').unwrap_or(stripped.len());
                    if let Ok(i) = stripped[..end].parse() {
                        out.push(Seg::Index(i));
                    }
                    rest = stripped.get(end + 1..).unwrap_or("");
                }
            } else {
                out.push(Seg::Key(rest.to_string()));
            }
        }
        Self(out)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A position in a source file, 1-based line and column as editors show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: YamlPath,
    pub location: Option<Location>,
    pub message: String,
}

/// A problem found after parsing, by a check that needs more than the file (the input's
/// columns, a compiled regex, the cluster's node types): a path into the spec and a
/// message. [`SpecSource::diagnostics`] turns a list of them into file:line:column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: YamlPath,
    pub message: String,
}

impl Problem {
    pub fn new(path: YamlPath, message: impl Into<String>) -> Self {
        Self { path, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.0.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The text a spec was parsed from (after `--set` overrides), kept so that problems found
/// later still point at the user's lines.
#[derive(Debug, Clone)]
pub struct SpecSource {
    pub file: String,
    pub src: String,
}

impl SpecSource {
    pub fn diagnostics(&self, problems: &[Problem]) -> Diagnostics {
        let index = LocationIndex::build(&self.src);
        let mut c = Collector::new(&self.file, &index);
        for p in problems {
            c.error(p.path.clone(), p.message.clone());
        }
        c.finish().err().unwrap_or_default()
    }
}

/// All problems found in one file.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// The messages alone, as `path: message`, for tests that assert exact wording.
    pub fn messages(&self) -> Vec<String> {
        self.items
            .iter()
            .map(|d| {
                if d.path.0.is_empty() {
                    d.message.clone()
                } else {
                    format!("{}: {}", d.path, d.message)
                }
            })
            .collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            match d.location {
                Some(l) => write!(f, "{}:{}:{}: ", self.file, l.line, l.column)?,
                None => write!(f, "{}: ", self.file)?,
            }
            if d.path.0.is_empty() {
                writeln!(f, "{}", d.message)?;
            } else {
                writeln!(f, "{}: {}", d.path, d.message)?;
            }
        }
        let n = self.items.len();
        write!(f, "{n} problem{} in {}", if n == 1 { "" } else { "s" }, self.file)
    }
}

impl std::error::Error for Diagnostics {}

/// Where each path of a YAML document starts (the key for mapping entries, the item for
/// sequence entries). Built from the parser's events so it sees exactly what serde sees.
#[derive(Debug, Default)]
pub struct LocationIndex {
    map: BTreeMap<YamlPath, Location>,
}

/// Nesting deeper than this is not indexed: serde_norway refuses it anyway (its recursion
/// limit is 128), and each level's path copies its parent's, so indexing 100,000 nested
/// `[` took 18 s (quadratic) before the parser's own error was reached.
pub const MAX_NESTING: usize = 128;

/// Where flow collections (`[`, `{`) nest deeper than [`MAX_NESTING`], if they do.
/// Checked before parsing: libyaml's scanner (under serde_norway) is quadratic in that depth
/// (100,000 nested `[` took 18 s in a release build) before its recursion limit refuses
/// the document anyway. Quotes are followed within a line (a quote opens only where a
/// scalar can start), comments skipped.
pub fn too_deep(src: &str) -> Option<Location> {
    let mut depth = 0usize;
    for (i, text) in src.lines().enumerate() {
        let (mut quote, mut prev) = (None, ' ');
        for (col, ch) in text.chars().enumerate() {
            match quote {
                Some(q) if ch == q && !(q == '"' && prev == '\\') => quote = None,
                Some(_) => {}
                None => match ch {
                    '"' | '\'' if prev.is_whitespace() || matches!(prev, ':' | ',' | '[' | '{' | '-') => quote = Some(ch),
                    '#' if prev.is_whitespace() => break,
                    '[' | '{' => {
                        depth += 1;
                        if depth > MAX_NESTING {
                            return Some(Location { line: i + 1, column: col + 1 });
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            prev = ch;
        }
    }
    None
}

/// The text the location index is built from: `src` with a flow collection's closing
/// `}`/`]` at column 0 moved to column 1. libyaml and PyYAML (so serde and Ray) accept
/// `file_mounts: {\n#  ...\n}`, as Ray's own example files write it, but the index's
/// stricter parser stops there and every key after it would lose its line. Lines and the
/// columns of every key stay as they were.
fn indexable(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 8);
    for line in src.split_inclusive('\n') {
        if line.starts_with(['}', ']']) {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

impl LocationIndex {
    pub fn build(src: &str) -> Self {
        enum Frame {
            Map { path: YamlPath, pending_key: Option<String> },
            Seq { path: YamlPath, next: usize },
        }
        let mut map = BTreeMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        // The path a value that starts now will have, and record it.
        fn value_path(stack: &mut [Frame]) -> Option<YamlPath> {
            match stack.last_mut() {
                None => Some(YamlPath::root()),
                Some(Frame::Map { path, pending_key }) => {
                    pending_key.take().map(|k| path.key(k))
                }
                Some(Frame::Seq { path, next }) => {
                    let p = path.index(*next);
                    *next += 1;
                    Some(p)
                }
            }
        }
        for ev in Parser::new_from_str(&indexable(src)) {
            let Ok((ev, span)) = ev else { break };
            if stack.len() > MAX_NESTING {
                break;
            }
            let loc = Location { line: span.start.line(), column: span.start.col() + 1 };
            match ev {
                Event::Scalar(value, ..) => {
                    // A scalar in key position of a mapping is a key.
                    if let Some(Frame::Map { path, pending_key }) = stack.last_mut() {
                        if pending_key.is_none() {
                            map.entry(path.key(value.to_string())).or_insert(loc);
                            *pending_key = Some(value.to_string());
                            continue;
                        }
                    }
                    if let Some(p) = value_path(&mut stack) {
                        map.entry(p).or_insert(loc);
                    }
                }
                Event::Alias(_) => {
                    value_path(&mut stack);
                }
                Event::MappingStart(..) => {
                    let p = value_path(&mut stack).unwrap_or_default();
                    map.entry(p.clone()).or_insert(loc);
                    stack.push(Frame::Map { path: p, pending_key: None });
                }
                Event::SequenceStart(..) => {
                    let p = value_path(&mut stack).unwrap_or_default();
                    map.entry(p.clone()).or_insert(loc);
                    stack.push(Frame::Seq { path: p, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        Self { map }
    }

    /// The location of `path`, or of its nearest ancestor that has one.
    pub fn locate(&self, path: &YamlPath) -> Option<Location> {
        let mut p = path.0.clone();
        loop {
            if let Some(l) = self.map.get(&YamlPath(p.clone())) {
                return Some(*l);
            }
            p.pop()?;
        }
    }
}

/// Collects diagnostics for one source file, resolving paths to locations.
pub struct Collector<'a> {
    pub index: &'a LocationIndex,
    pub diags: Diagnostics,
}

impl<'a> Collector<'a> {
    pub fn new(file: &str, index: &'a LocationIndex) -> Self {
        Self { index, diags: Diagnostics { file: file.to_string(), items: Vec::new() } }
    }
    pub fn error(&mut self, path: YamlPath, message: impl Into<String>) {
        let location = self.index.locate(&path);
        self.diags.items.push(Diagnostic { path, location, message: message.into() });
    }
    pub fn finish(mut self) -> Result<(), Diagnostics> {
        self.diags.items.sort_by_key(|d| d.location.map(|l| (l.line, l.column)));
        if self.diags.is_empty() {
            Ok(())
        } else {
            Err(self.diags)
        }
    }
}

/// Deserialize `T` from YAML text, reporting every unknown key and every type error
/// (not only the first) with its location. On success returns the value, the source's
/// index (so semantic checks can point at lines too) and a collector already holding
/// the unknown-key problems: the caller adds its own checks and calls `finish`.
pub fn load_yaml<'i, T: DeserializeOwned>(
    file: &str,
    src: &str,
    index: &'i LocationIndex,
) -> Result<(T, Collector<'i>), Diagnostics> {
    load_yaml_tolerating(file, src, index, |_| false).map(|(v, c, _)| (v, c))
}

/// The document refused before parsing when it nests deeper than [`MAX_NESTING`].
pub fn refuse_deep_nesting(file: &str, src: &str) -> Result<(), Diagnostics> {
    match too_deep(src) {
        None => Ok(()),
        Some(location) => Err(Diagnostics {
            file: file.to_string(),
            items: vec![Diagnostic {
                path: YamlPath::root(),
                location: Some(location),
                message: format!("invalid YAML: nested deeper than {MAX_NESTING} levels"),
            }],
        }),
    }
}

/// [`load_yaml`] for formats with open sections (another tool's file, where keys we do
/// not model are legitimate): unknown keys for which `tolerate` is true are returned
/// instead of reported, so the caller can say what it does with them.
pub fn load_yaml_tolerating<'i, T: DeserializeOwned>(
    file: &str,
    src: &str,
    index: &'i LocationIndex,
    tolerate: impl Fn(&YamlPath) -> bool,
) -> Result<(T, Collector<'i>, Vec<YamlPath>), Diagnostics> {
    refuse_deep_nesting(file, src)?;
    let mut value: serde_norway::Value = match serde_norway::from_str(src) {
        Ok(v) => v,
        Err(e) => {
            let location = e.location().map(|l| Location { line: l.line(), column: l.column() });
            let msg = e.to_string();
            // serde_norway appends " at line N column M"; the location prefix says it.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            return Err(Diagnostics {
                file: file.to_string(),
                items: vec![Diagnostic { path: YamlPath::root(), location, message: format!("invalid YAML: {msg}") }],
            });
        }
    };
    if value.is_null() {
        value = serde_norway::Value::Mapping(Default::default());
    }
    let mut c = Collector::new(file, index);
    // Values removed so far, in original coordinates (sequence removals shift indices).
    let mut removed: Vec<YamlPath> = Vec::new();
    let mut unknown: std::collections::BTreeSet<YamlPath> = Default::default();
    let mut loaded: Option<T> = None;
    // Each round finds one type error, records it and removes the offending value, so the
    // next round can find the next one. Bounded: a spec has far fewer problems than this.
    for _ in 0..64 {
        let mut seen: Vec<YamlPath> = Vec::new();
        let result: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
            value.clone(),
            &mut |p: serde_ignored::Path<'_>| seen.push(ignored_path(&p)),
        ));
        unknown.extend(seen.iter().map(|p| original_path(p, &removed)));
        match result {
            Ok(v) => {
                loaded = Some(v);
                break;
            }
            Err(e) => {
                let current = error_path(e.path());
                let path = original_path(&current, &removed);
                let inner = e.into_inner().to_string();
                let inner = inner.split(" at line ").next().unwrap_or(&inner).to_string();
                // An error above a value we removed (a now-missing field, an empty step) is
                // caused by our removal, not by the user.
                let caused_by_us = removed.iter().any(|r| r.0.len() > path.0.len() && r.0.starts_with(&path.0));
                if !caused_by_us {
                    c.error(path.clone(), inner);
                }
                if current.0.is_empty() || !remove_path(&mut value, &current) {
                    break;
                }
                removed.push(path);
            }
        }
    }
    let (tolerated, unknown): (Vec<YamlPath>, Vec<YamlPath>) = unknown.into_iter().partition(|p| tolerate(p));
    for p in unknown {
        let key = match p.0.last() {
            Some(Seg::Key(k)) => k.clone(),
            _ => p.to_string(),
        };
        c.error(p, format!("unknown key `{key}`"));
    }
    match loaded {
        Some(v) => Ok((v, c, tolerated)),
        None => Err(c.finish().expect_err("a failed round always records a problem")),
    }
}

/// Map a path in the edited value back to the user's file, undoing index shifts caused
/// by removing sequence items.
fn original_path(current: &YamlPath, removed: &[YamlPath]) -> YamlPath {
    let mut out: Vec<Seg> = Vec::new();
    for seg in &current.0 {
        match seg {
            Seg::Index(k) => {
                let mut idx = *k;
                let mut gone: Vec<usize> = removed
                    .iter()
                    .filter(|r| r.0.len() == out.len() + 1 && r.0.starts_with(&out))
                    .filter_map(|r| match r.0.last() {
                        Some(Seg::Index(i)) => Some(*i),
                        _ => None,
                    })
                    .collect();
                gone.sort();
                for g in gone {
                    if g <= idx {
                        idx += 1;
                    }
                }
                out.push(Seg::Index(idx));
            }
            other => out.push(other.clone()),
        }
    }
    YamlPath(out)
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> YamlPath {
    fn walk(p: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
        use serde_ignored::Path as P;
        match p {
            P::Root => {}
            P::Seq { parent, index } => {
                walk(parent, out);
                out.push(Seg::Index(*index));
            }
            P::Map { parent, key } => {
                walk(parent, out);
                out.push(Seg::Key(key.clone()));
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    let mut out = Vec::new();
    walk(p, &mut out);
    YamlPath(out)
}

fn error_path(p: &serde_path_to_error::Path) -> YamlPath {
    use serde_path_to_error::Segment as S;
    YamlPath(
        p.iter()
            .filter_map(|s| match s {
                S::Seq { index } => Some(Seg::Index(*index)),
                S::Map { key } => Some(Seg::Key(key.clone())),
                S::Enum { .. } | S::Unknown => None,
            })
            .collect(),
    )
}

fn remove_path(v: &mut serde_norway::Value, path: &YamlPath) -> bool {
    let Some((last, parents)) = path.0.split_last() else { return false };
    let mut cur = v;
    for seg in parents {
        cur = match (seg, cur) {
            (Seg::Key(k), serde_norway::Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(x) => x,
                None => return false,
            },
            (Seg::Index(i), serde_norway::Value::Sequence(s)) => match s.get_mut(*i) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), serde_norway::Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        (Seg::Index(i), serde_norway::Value::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn deep_nesting_is_indexed_only_to_the_limit_and_refused() {
        let src = format!("name: {}x{}", "[".repeat(100_000), "]".repeat(100_000));
        let index = LocationIndex::build(&src);
        assert!(index.map.len() <= MAX_NESTING + 2, "{} entries: every level was indexed", index.map.len());
        let e = crate::JobSpec::from_yaml("deep.yaml", &src).unwrap_err().to_string();
        assert!(e.contains("deep.yaml:1:135: invalid YAML: nested deeper than 128 levels"), "{e}");
        // Brackets in quoted strings and comments are not nesting.
        let quoted = format!("name: '{}'\n# {}\nother: \"{}\"\n", "[".repeat(500), "{".repeat(500), "[".repeat(500));
        assert_eq!(too_deep(&quoted), None);
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        count: u32,
    }

    fn load(file: &str, src: &str) -> Result<Outer, Diagnostics> {
        let index = LocationIndex::build(src);
        let (v, c) = load_yaml::<Outer>(file, src, &index)?;
        c.finish()?;
        Ok(v)
    }

    #[test]
    fn sequence_errors_keep_their_original_index() {
        let src = "name: x\nitems:\n  - a: no\n  - a: 1\n  - a: nope\n";
        let err = load("t.yaml", src).unwrap_err();
        assert_eq!(
            err.messages(),
            vec![
                "items[0].a: invalid type: string \"no\", expected u32",
                "items[2].a: invalid type: string \"nope\", expected u32"
            ]
        );
    }

    #[test]
    fn reports_every_unknown_key_and_type_error_with_lines() {
        let src = "name: x\ncount: many\nitems:\n  - a: 1\n    bogus: 2\n  - a: nope\nextra: 1\n";
        let err = load("t.yaml", src).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("t.yaml:2:1: count: invalid type: string \"many\", expected u32"), "{text}");
        assert!(text.contains("t.yaml:6:5: items[1].a: invalid type: string \"nope\", expected u32"), "{text}");
        assert!(text.contains("t.yaml:5:5: items[0].bogus: unknown key `bogus`"), "{text}");
        assert!(text.contains("t.yaml:7:1: extra: unknown key `extra`"), "{text}");
        assert_eq!(err.len(), 4, "{text}");
    }

    #[test]
    fn unknown_keys_all_reported() {
        let src = "name: x\nitems:\n  - a: 1\n    bogus: 2\nextra: 1\n";
        let err = load("t.yaml", src).unwrap_err();
        assert_eq!(err.messages(), vec!["items[0].bogus: unknown key `bogus`", "extra: unknown key `extra`"]);
        let text = err.to_string();
        assert!(text.contains("t.yaml:4:5: items[0].bogus"), "{text}");
        assert!(text.contains("t.yaml:5:1: extra"), "{text}");
    }

    #[test]
    fn syntax_error_has_location() {
        let err = load("t.yaml", "name: [unclosed\n").unwrap_err();
        assert!(err.to_string().starts_with("t.yaml:"), "{err}");
        assert!(err.messages()[0].starts_with("invalid YAML"), "{err}");
    }

    #[test]
    fn tolerated_unknown_keys_are_returned_not_reported() {
        let src = "name: x\nitems:\n  - a: 1\n    open: 2\nextra: 1\n";
        let index = LocationIndex::build(src);
        let tolerate = |p: &YamlPath| p.0.len() == 3 && p.0[0] == Seg::Key("items".into());
        let (_, c, tolerated) = load_yaml_tolerating::<Outer>("t.yaml", src, &index, tolerate).unwrap();
        assert_eq!(tolerated, vec![YamlPath::parse("items[0].open")]);
        assert_eq!(c.finish().unwrap_err().messages(), vec!["extra: unknown key `extra`"]);
    }

    #[test]
    fn a_flow_mapping_closed_at_column_0_keeps_the_lines_of_the_keys_after_it() {
        let src = "file_mounts: {\n#  \"/a\": \"/b\"\n}\nmax_workers: 2\nlist: [1,\n]\nnested:\n  after: 3\n";
        let index = LocationIndex::build(src);
        let at = |p: &str| index.locate(&YamlPath::parse(p)).map(|l| (l.line, l.column));
        assert_eq!(at("max_workers"), Some((4, 1)));
        assert_eq!(at("nested.after"), Some((8, 3)));
    }

    #[test]
    fn path_round_trip() {
        let p = YamlPath::parse("network.private_subnets[1]");
        assert_eq!(p.to_string(), "network.private_subnets[1]");
    }
}
