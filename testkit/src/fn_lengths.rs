//! Function lengths: the longest functions a crate ships, as evidence anyone can rerun.
//!
//! "Functions fit on a screen" is a habit of this code base; [`shipped_fn_lengths`] says
//! where it holds and where it does not, so a refactor can show its before and after
//! (`cargo run -p fleetform-testkit --bin fn-lengths -- node-agent --over 80`).
//!
//! - Files are parsed with `syn`, so strings, comments, macros and nested blocks never
//!   confuse the count. A file that does not parse is an error naming it.
//! - A function's length is the lines from its `fn` keyword to its closing brace: doc
//!   comments and attributes above it are not counted, blank lines and comments inside
//!   are. Free functions, methods (named `Type::method`), default trait methods and
//!   functions nested in other functions are all listed.
//! - Test code is not read: items under a `#[cfg(test)]` (or `#[cfg(all(test, ..))]`)
//!   attribute, a file module declared under one (`#[cfg(test)] mod tests;`) and its
//!   directory, files named `tests.rs` or `*_tests.rs`, and the `tests/`, `benches/`,
//!   `examples/` and `target/` directories.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Attribute, Meta, Token};

/// One shipped function and its length.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FnLength {
    /// Lines from the `fn` keyword to the closing brace, both included.
    pub lines: usize,
    /// The file, as found under the scanned directory (`node-agent/src/exec/task.rs`).
    pub file: PathBuf,
    /// The line of the `fn` keyword.
    pub line: usize,
    /// `name`, or `Type::name` for a method (`Trait::name` for a default trait method).
    pub name: String,
}

/// Directories that never hold shipped code.
const SKIPPED_DIRS: [&str; 5] = ["tests", "benches", "examples", "target", ".git"];

/// Every function in the shipped `.rs` files under `dir`, longest first (then by file and
/// line, so the output is stable).
pub fn shipped_fn_lengths(dir: &Path) -> io::Result<Vec<FnLength>> {
    let mut files = Vec::new();
    collect_rs_files(dir, &mut files)?;
    let mut parsed = Vec::new();
    let mut test_modules = HashSet::new();
    for path in files {
        let text = fs::read_to_string(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let file = syn::parse_file(&text).map_err(|e| {
            let at = e.span().start();
            let message = format!(
                "{}:{}:{}: not Rust syn can parse: {e}",
                path.display(),
                at.line,
                at.column + 1
            );
            io::Error::new(io::ErrorKind::InvalidData, message)
        })?;
        test_modules.extend(test_module_files(&path, &file));
        parsed.push((path, file));
    }
    let mut out = Vec::new();
    for (path, file) in &parsed {
        if test_modules.iter().any(|m| path.starts_with(m)) {
            continue;
        }
        let mut visitor = FnVisitor {
            file: path,
            owner: None,
            out: &mut out,
        };
        visitor.visit_file(file);
    }
    out.sort_by(|a, b| {
        b.lines
            .cmp(&a.lines)
            .then_with(|| (&a.file, a.line).cmp(&(&b.file, b.line)))
    });
    Ok(out)
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let entries = fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()?;
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                collect_rs_files(&path, out)?;
            }
        } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The files (and their directories) of the modules `file` declares under `#[cfg(test)]`
/// without a body: `mod tests;` in `a/b.rs` is `a/b/tests.rs` or `a/b/tests/mod.rs`, in a
/// `mod.rs`, `lib.rs` or `main.rs` it sits beside it; `#[path = ".."]` is honoured.
fn test_module_files(path: &Path, file: &syn::File) -> Vec<PathBuf> {
    let Some(parent) = path.parent() else {
        return Vec::new();
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = if matches!(stem.as_str(), "mod" | "lib" | "main") {
        parent.to_path_buf()
    } else {
        parent.join(&stem)
    };
    let mut out = Vec::new();
    for item in &file.items {
        let syn::Item::Mod(m) = item else { continue };
        if m.content.is_some() || !requires_test(&m.attrs) {
            continue;
        }
        if let Some(explicit) = path_attribute(&m.attrs) {
            out.push(parent.join(explicit));
            continue;
        }
        let name = m.ident.to_string();
        out.push(base.join(format!("{name}.rs")));
        out.push(base.join(&name)); // its directory: name/mod.rs and any children
    }
    out
}

fn path_attribute(attrs: &[Attribute]) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident("path"))
        .and_then(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
}

/// Whether one of `attrs` is a `cfg` that holds only in test builds: `cfg(test)`,
/// `cfg(all(test, ..))`, `cfg(any(test, all(test, ..)))`.
fn requires_test(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .any(|a| match &a.meta {
            Meta::List(list) => list
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|preds| preds.len() == 1 && preds.iter().all(predicate_requires_test)),
            _ => false,
        })
}

fn predicate_requires_test(meta: &Meta) -> bool {
    match meta {
        Meta::Path(p) => p.is_ident("test"),
        Meta::List(list) => {
            let Ok(args) = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            else {
                return false;
            };
            if list.path.is_ident("all") {
                args.iter().any(predicate_requires_test)
            } else if list.path.is_ident("any") {
                !args.is_empty() && args.iter().all(predicate_requires_test)
            } else {
                false // not(..) and anything unknown: may hold outside tests
            }
        }
        Meta::NameValue(_) => false,
    }
}

struct FnVisitor<'a> {
    file: &'a Path,
    /// The type of the `impl` or the trait being visited, for method names.
    owner: Option<String>,
    out: &'a mut Vec<FnLength>,
}

impl FnVisitor<'_> {
    fn record(&mut self, name: &syn::Ident, fn_token: &Token![fn], block: &syn::Block) {
        let line = fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        let name = match &self.owner {
            Some(owner) => format!("{owner}::{name}"),
            None => name.to_string(),
        };
        self.out.push(FnLength {
            lines: end + 1 - line,
            file: self.file.to_path_buf(),
            line,
            name,
        });
    }

    /// Visit `f` with `owner` as the method owner, restoring the previous one after.
    fn with_owner(&mut self, owner: Option<String>, f: impl FnOnce(&mut Self)) {
        let outer = std::mem::replace(&mut self.owner, owner);
        f(self);
        self.owner = outer;
    }
}

impl<'ast> Visit<'ast> for FnVisitor<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !requires_test(&m.attrs) {
            self.with_owner(None, |v| syn::visit::visit_item_mod(v, m));
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !requires_test(&i.attrs) {
            let owner = type_name(&i.self_ty);
            self.with_owner(Some(owner), |v| syn::visit::visit_item_impl(v, i));
        }
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        if !requires_test(&t.attrs) {
            self.with_owner(Some(t.ident.to_string()), |v| {
                syn::visit::visit_item_trait(v, t)
            });
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !requires_test(&f.attrs) {
            self.record(&f.sig.ident, &f.sig.fn_token, &f.block);
            self.with_owner(None, |v| syn::visit::visit_item_fn(v, f));
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !requires_test(&f.attrs) {
            self.record(&f.sig.ident, &f.sig.fn_token, &f.block);
            self.with_owner(None, |v| syn::visit::visit_impl_item_fn(v, f));
        }
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if requires_test(&f.attrs) {
            return;
        }
        if let Some(block) = &f.default {
            self.record(&f.sig.ident, &f.sig.fn_token, block);
        }
        self.with_owner(None, |v| syn::visit::visit_trait_item_fn(v, f));
    }
}

/// `Foo` for `impl Foo`, `impl<T> Foo<T>` and `impl Trait for Foo`; `_` for a type with no
/// path (a tuple, a reference is followed to its target).
fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        syn::Type::Reference(r) => type_name(&r.elem),
        _ => "_".to_string(),
    }
}

#[cfg(test)]
mod tests {
    /// The house rule, checked on the shipped crates: no function over 80 lines, except
    /// declarative tables (an IAM policy reads best as the one document AWS evaluates).
    #[test]
    fn no_shipped_function_is_over_80_lines_except_declarative_tables() {
        const TABLES: [&str; 1] = ["head_policy"];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut long = Vec::new();
        for krate in ["core", "runtime", "node-agent", "reconciler"] {
            for f in super::shipped_fn_lengths(&root.join(krate).join("src")).unwrap() {
                if f.lines > 80 && !TABLES.contains(&f.name.as_str()) {
                    long.push(format!("{} lines: {}:{} {}", f.lines, f.file.display(), f.line, f.name));
                }
            }
        }
        assert!(long.is_empty(), "split these (or say why one is a declarative table):\n{}", long.join("\n"));
    }

    use super::*;

    /// A directory under the system temp dir, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(files: &[(&str, &str)]) -> Tree {
            let root = std::env::temp_dir().join(format!("fn-lengths-{}", uuid::Uuid::new_v4()));
            for (path, text) in files {
                let path = root.join(path);
                fs::create_dir_all(path.parent().expect("a file path has a parent"))
                    .expect("create dir");
                fs::write(path, text).expect("write file");
            }
            Tree(root)
        }

        fn lengths(&self) -> Vec<(usize, String, usize, String)> {
            shipped_fn_lengths(&self.0)
                .expect("scan")
                .into_iter()
                .map(|f| {
                    let file = f
                        .file
                        .strip_prefix(&self.0)
                        .expect("under root")
                        .display()
                        .to_string();
                    (f.lines, file, f.line, f.name)
                })
                .collect()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn lengths_run_from_fn_to_closing_brace_and_ignore_braces_in_strings_and_comments() {
        let tree = Tree::new(&[(
            "src/lib.rs",
            "/// Doc lines are not counted.\n#[inline]\npub fn a() {\n    let s = \"}}}\";\n    // }\n\n    let _ = s;\n}\n\nstruct S;\nimpl S {\n    fn m(&self) -> char { '}' }\n}\n",
        )]);
        assert_eq!(
            tree.lengths(),
            vec![
                (6, "src/lib.rs".into(), 3, "a".into()),
                (1, "src/lib.rs".into(), 12, "S::m".into())
            ]
        );
    }

    #[test]
    fn test_code_is_not_read() {
        let tree = Tree::new(&[
            (
                "src/lib.rs",
                "#[cfg(test)]\nmod unit;\n#[cfg(all(test, unix))]\nmod inline { fn t() {\n} }\n#[cfg(not(test))]\nfn kept() {}\n",
            ),
            ("src/unit.rs", "fn hidden() {}\n"),
            ("src/unit/deeper.rs", "fn hidden_too() {}\n"),
            ("src/exec_tests.rs", "fn helper() {}\n"),
            ("tests/e2e.rs", "fn e2e() {}\n"),
        ]);
        assert_eq!(
            tree.lengths(),
            vec![(1, "src/lib.rs".into(), 7, "kept".into())]
        );
    }

    #[test]
    fn default_trait_methods_and_nested_functions_are_listed_longest_first() {
        let tree = Tree::new(&[(
            "src/main.rs",
            "trait T {\n    fn req(&self);\n    fn def(&self) {\n    }\n}\nfn outer() {\n    fn inner() {\n        let _ = 1;\n    }\n    inner();\n}\n",
        )]);
        assert_eq!(
            tree.lengths(),
            vec![
                (6, "src/main.rs".into(), 6, "outer".into()),
                (3, "src/main.rs".into(), 7, "inner".into()),
                (2, "src/main.rs".into(), 3, "T::def".into()),
            ]
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_named() {
        let tree = Tree::new(&[("src/lib.rs", "fn broken( {\n")]);
        let err = shipped_fn_lengths(&tree.0).expect_err("must not parse");
        assert!(err.to_string().contains("src/lib.rs:"), "{err}");
    }
}
