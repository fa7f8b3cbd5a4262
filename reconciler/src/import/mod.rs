//! `fleetform import ray`: a `ray up` cluster YAML → a fleetform cluster spec.
//!
//! parse (`ray`, with file:line:column errors) → the node types as Ray reads them
//! (`sources`: the file's, the legacy sections, or Ray's defaults; `launch_template`) →
//! convert (`convert`, `gpu`, `network`, notes for every decision) → optionally resolve
//! AL2023 AMIs (`images`) → write YAML text with provenance comments (`emit`, from the
//! pieces in `yaml`) → parse it back with `ClusterSpec::from_yaml`, so import never
//! writes a spec that does not validate. Every note and error names a line of the Ray
//! file (`locate`), never one of the spec it wrote.

mod convert;
mod emit;
mod gpu;
mod images;
mod launch_template;
mod locate;
mod model;
mod network;
mod ray;
mod sources;
mod unmapped;
mod vpc;
mod yaml;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use fleetform_core::diag::{Collector, Diagnostics, Location, LocationIndex, YamlPath};
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
    /// Ask EC2 for the launch templates node_configs name.
    pub resolve_launch_templates: bool,
}

/// A converted file, not yet written.
pub struct Converted {
    pub imported: model::Imported,
    pub notes: Vec<Note>,
    /// The Ray file, as diagnostics name it.
    file: String,
    index: LocationIndex,
    /// Where a note about the whole file (or a key it leaves out) points: its first key.
    first: Location,
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
    convert_with(file, src, vpc, &launch_template::Templates::new())
}

/// [`convert_file_in`] with the launch templates resolved from EC2.
pub fn convert_with(file: &str, src: &str, vpc: Option<(&str, &str)>, templates: &launch_template::Templates) -> Result<Converted, ConvertError> {
    let parsed = ray::parse(file, src).map_err(ConvertError::Ray)?;
    let mut notes = Vec::new();
    let source = Path::new(file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| file.to_string());
    let mut imported = convert::convert(&source, &parsed.ray, templates, &mut notes).map_err(|errors| {
        let mut c = Collector::new(file, &parsed.index);
        errors.into_iter().for_each(|e| c.error(e.path, e.message));
        ConvertError::Ray(c.finish().err().unwrap_or_default())
    })?;
    network::choose(&mut imported, vpc, &mut notes).map_err(ConvertError::Usage)?;
    notes.extend(unmapped::notes(&parsed.unmapped).into_iter().map(|(path, message)| Note { path, message }));
    Ok(Converted { imported, notes, file: file.to_string(), index: parsed.index, first: locate::first_key(src) })
}

impl Converted {
    /// The spec's text, checked by the same validation as `fleetform validate`; its
    /// problems are reported at the lines of the Ray file they came from.
    pub fn spec_text(&self) -> Result<String, (String, Diagnostics)> {
        let text = emit::render(&self.imported);
        match ClusterSpec::from_yaml("the imported spec", &text) {
            Ok(_) => Ok(text),
            Err(d) => Err((text, locate::in_ray_file(&d, &self.imported, &self.file, &self.index, self.first))),
        }
    }

    /// The notes as stderr lines, in file order: `file:line:col: note: path: message`.
    pub fn note_lines(&self, file: &str) -> Vec<String> {
        let mut located: Vec<(Option<(usize, usize)>, String)> = self
            .notes
            .iter()
            .map(|n| {
                let l = self.index.locate(&n.path).unwrap_or(self.first);
                let line = match n.path.0.is_empty() {
                    true => format!("{file}:{}:{}: note: {}", l.line, l.column, n.message),
                    false => format!("{file}:{}:{}: note: {}: {}", l.line, l.column, n.path, n.message),
                };
                (Some((l.line, l.column)), line)
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
    let templates = if args.resolve_launch_templates { launch_templates(&file, &src).await? } else { Default::default() };
    let mut c = match convert(&file, &src, args.vpc_id.as_deref().map(|v| (v, "from --vpc-id")), &templates) {
        Some(c) => c,
        None => return Ok(1),
    };
    if args.resolve_vpc {
        if let Some(vpc) = vpc::of_subnets(&c.imported).await? {
            eprintln!("{file}: note: the Ray file's subnets are in {vpc} (ec2:DescribeSubnets)");
            c = match convert(&file, &src, Some((&vpc, "from ec2:DescribeSubnets of the Ray file's subnets")), &templates) {
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
    let text = match c.spec_text() {
        Ok(t) => t,
        Err((text, d)) => {
            eprintln!("{d}\nerror: the imported spec does not validate (nothing was written); it was:\n");
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

/// The launch templates the Ray file names, read from EC2 (`--resolve-launch-templates`).
async fn launch_templates(file: &str, src: &str) -> Result<launch_template::Templates> {
    let Ok(parsed) = ray::parse(file, src) else {
        return Ok(Default::default()); // convert reports the file's problems
    };
    let r = &parsed.ray;
    let configs: Vec<&ray::RayNodeConfig> =
        r.available_node_types.values().map(|t| &t.node_config).chain(r.head_node.iter()).chain(r.worker_nodes.iter()).collect();
    launch_template::resolve(r.provider.region.as_deref(), &launch_template::named(&configs)).await
}

/// Convert, printing what went wrong (None) for the caller to exit 1.
fn convert(file: &str, src: &str, vpc: Option<(&str, &str)>, templates: &launch_template::Templates) -> Option<Converted> {
    match convert_with(file, src, vpc, templates) {
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
