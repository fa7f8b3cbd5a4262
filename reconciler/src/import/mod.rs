//! `fleetform import ray`: a `ray up` cluster YAML → a fleetform cluster spec.
//!
//! parse (`ray`, with file:line:column errors) → convert (`convert`, `network`, notes for
//! every decision) → optionally resolve AL2023 AMIs (`images`) → write YAML text with
//! provenance comments (`emit`, from the pieces in `yaml`) → parse it back with
//! `ClusterSpec::from_yaml`, so import never writes a spec that does not validate.

mod convert;
mod emit;
mod images;
mod model;
mod network;
mod ray;
mod unmapped;
mod vpc;
mod yaml;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use fleetform_core::diag::{Diagnostics, LocationIndex, YamlPath};
use fleetform_core::ClusterSpec;

pub use convert::sanitize_name;

/// Something the import decided that the user should know, at a place in the Ray file.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub path: YamlPath,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct RayImportArgs {
    pub ray_yaml: PathBuf,
    pub output: Option<PathBuf>,
    pub force: bool,
    pub resolve_images: bool,
    /// The existing VPC of the Ray file's subnets (bring-your-own network).
    pub vpc_id: Option<String>,
    /// Ask EC2 for that VPC instead.
    pub resolve_vpc: bool,
}

/// A converted file, not yet written.
pub struct Converted {
    pub imported: model::Imported,
    pub notes: Vec<Note>,
    index: LocationIndex,
}

/// Parse and convert, the Ray file's network kept as a commented-out block.
pub fn convert_file(file: &str, src: &str) -> Result<Converted, Diagnostics> {
    convert_file_in(file, src, None).map_err(|e| match e {
        ConvertError::Ray(d) => d,
        ConvertError::Usage(m) => unreachable!("no --vpc-id, no usage error: {m}"),
    })
}

/// Why a conversion failed: the Ray file (diagnostics), or how import was called.
#[derive(Debug)]
pub enum ConvertError {
    Ray(Diagnostics),
    Usage(String),
}

/// Parse and convert; with `vpc` (its id, and where it came from for the comment), the
/// Ray file's subnets become the existing-VPC form.
pub fn convert_file_in(file: &str, src: &str, vpc: Option<(&str, &str)>) -> Result<Converted, ConvertError> {
    let parsed = ray::parse(file, src).map_err(ConvertError::Ray)?;
    let mut notes = Vec::new();
    let source = Path::new(file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| file.to_string());
    let mut imported = convert::convert(&source, &parsed.ray, &mut notes);
    network::choose(&mut imported, vpc, &mut notes).map_err(ConvertError::Usage)?;
    notes.extend(unmapped::notes(&parsed.unmapped).into_iter().map(|(path, message)| Note { path, message }));
    Ok(Converted { imported, notes, index: parsed.index })
}

impl Converted {
    /// The spec's text, checked by the same validation as `fleetform validate`.
    pub fn spec_text(&self, out_name: &str) -> Result<String, (String, Diagnostics)> {
        let text = emit::render(&self.imported);
        match ClusterSpec::from_yaml(out_name, &text) {
            Ok(_) => Ok(text),
            Err(d) => Err((text, d)),
        }
    }

    /// The notes as stderr lines, in file order: `file:line:col: note: path: message`.
    pub fn note_lines(&self, file: &str) -> Vec<String> {
        let mut located: Vec<(Option<(usize, usize)>, String)> = self
            .notes
            .iter()
            .map(|n| {
                let at = (!n.path.0.is_empty()).then(|| self.index.locate(&n.path)).flatten();
                match at {
                    Some(l) => (Some((l.line, l.column)), format!("{file}:{}:{}: note: {}: {}", l.line, l.column, n.path, n.message)),
                    None => (None, format!("{file}: note: {}", n.message)),
                }
            })
            .collect();
        // Stable: notes about the same place keep the order they were made in.
        located.sort_by_key(|(at, _)| at.unwrap_or((usize::MAX, 0)));
        located.into_iter().map(|(_, l)| l).collect()
    }
}

pub async fn ray_command(args: &RayImportArgs) -> Result<i32> {
    let file = args.ray_yaml.display().to_string();
    if let Some(out) = args.output.as_ref().filter(|o| o.exists() && !args.force) {
        eprintln!("error: {} exists: pass --force to overwrite it, or choose another -o", out.display());
        return Ok(1);
    }
    let src = std::fs::read_to_string(&args.ray_yaml).with_context(|| format!("cannot read the Ray cluster file {file}"))?;
    let mut c = match convert(&file, &src, args.vpc_id.as_deref().map(|v| (v, "from --vpc-id"))) {
        Some(c) => c,
        None => return Ok(1),
    };
    if args.resolve_vpc {
        if let Some(vpc) = vpc::of_subnets(&c.imported).await? {
            eprintln!("{file}: note: the Ray file's subnets are in {vpc} (ec2:DescribeSubnets)");
            c = match convert(&file, &src, Some((&vpc, "from ec2:DescribeSubnets of the Ray file's subnets"))) {
                Some(c) => c,
                None => return Ok(1),
            };
        }
    }
    if args.resolve_images {
        let current = images::current_al2023(&c.imported).await?;
        images::use_al2023(&mut c.imported, &current, &mut c.notes);
    } else {
        images::hint(&c.imported, &mut c.notes);
    }
    for l in c.note_lines(&file) {
        eprintln!("{l}");
    }
    let out_name = args.output.as_ref().map(|o| o.display().to_string()).unwrap_or_else(|| "<stdout>".into());
    let text = match c.spec_text(&out_name) {
        Ok(t) => t,
        Err((text, d)) => {
            eprintln!("error: the imported spec does not validate (nothing was written):\n{d}\n");
            for (i, l) in text.lines().enumerate() {
                eprintln!("{:>4} | {l}", i + 1);
            }
            return Ok(1);
        }
    };
    write(args, &text)?;
    if let Some(out) = &args.output {
        eprintln!("wrote {}: change storage.bucket, then `fleetform plan -f {}`", out.display(), out.display());
    }
    Ok(0)
}

/// Convert, printing what went wrong (None) for the caller to exit 1.
fn convert(file: &str, src: &str, vpc: Option<(&str, &str)>) -> Option<Converted> {
    match convert_file_in(file, src, vpc) {
        Ok(c) => Some(c),
        Err(ConvertError::Ray(d)) => {
            eprintln!("{d}");
            None
        }
        Err(ConvertError::Usage(m)) => {
            eprintln!("error: {m}");
            None
        }
    }
}

fn write(args: &RayImportArgs, text: &str) -> Result<()> {
    let Some(out) = &args.output else {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(());
    };
    let mut open = std::fs::OpenOptions::new();
    // create_new: a file that appeared since the check above is not overwritten either.
    open.write(true);
    if args.force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let mut f = open.open(out).with_context(|| format!("cannot write {}", out.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", out.display()))
}
