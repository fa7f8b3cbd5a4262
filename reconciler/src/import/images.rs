//! `--resolve-images`: an AMI that is the current Amazon Linux 2023 of its architecture
//! becomes `image: al2023`, so the nodes follow AL2023 releases instead of pinning the
//! AMI the Ray file was written with. Asks the public SSM parameters, like `plan` does.

use std::collections::BTreeMap;

use anyhow::Result;
use fleetform_core::diag::YamlPath;
use fleetform_core::instance::Arch;
use fleetform_core::spec::al2023_parameter;

use super::model::{Image, Imported};
use super::Note;

/// The current AL2023 AMI of each architecture the imported node types use.
#[cfg(not(feature = "aws"))]
pub async fn current_al2023(_imported: &Imported) -> Result<BTreeMap<Arch, String>> {
    Err(fleetform_runtime::without_aws("`fleetform import ray --resolve-images` (it asks SSM)"))
}

/// The current AL2023 AMI of each architecture the imported node types use.
#[cfg(feature = "aws")]
pub async fn current_al2023(imported: &Imported) -> Result<BTreeMap<Arch, String>> {
    let archs: BTreeSet<Arch> = imported
        .node_types
        .iter()
        .filter_map(|t| match t.image.as_ref().map(|s| &s.value) {
            Some(Image::Ami { arch, .. }) => Some(*arch),
            _ => None,
        })
        .collect();
    if archs.is_empty() {
        return Ok(BTreeMap::new());
    }
    use crate::aws::context::sdk_config_in;
    use anyhow::bail;
    use std::collections::BTreeSet;
    use crate::aws::errors::aws_err;
    let sdk = sdk_config_in(imported.region.as_ref().map(|r| r.value.as_str())).await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let names: Vec<String> = archs.iter().map(|a| al2023_parameter(*a)).collect();
    let got = ssm.get_parameters().set_names(Some(names)).send().await.map_err(aws_err("ssm:GetParameters"))?;
    if let Some(bad) = got.invalid_parameters().first() {
        bail!("the public SSM parameter {bad} does not exist in this region: import without --resolve-images");
    }
    let mut out = BTreeMap::new();
    for a in archs {
        let name = al2023_parameter(a);
        if let Some(v) = got.parameters().iter().find(|p| p.name() == Some(name.as_str())).and_then(|p| p.value()) {
            out.insert(a, v.to_string());
        }
    }
    Ok(out)
}

/// Replace AMIs equal to the current AL2023 of their architecture by `al2023`.
pub fn use_al2023(imported: &mut Imported, current: &BTreeMap<Arch, String>, notes: &mut Vec<Note>) {
    for t in &mut imported.node_types {
        let Some(image) = &mut t.image else { continue };
        let Image::Ami { id, arch } = &image.value else { continue };
        let path = t.config_at.key("ImageId");
        let param = al2023_parameter(*arch);
        match current.get(arch) {
            Some(v) if v == id => {
                image.from = format!("from {path}: {id} is the current AL2023 ({param})");
                image.value = Image::Al2023;
            }
            other => notes.push(Note {
                path,
                message: format!(
                    "{id} is not the current AL2023 AMI{}: kept as an explicit AMI",
                    other.map(|v| format!(" ({param} is {v})")).unwrap_or_default()
                ),
            }),
        }
    }
}

/// Without `--resolve-images`: say once that explicit AMIs were kept and how to do better.
pub fn hint(imported: &Imported, notes: &mut Vec<Note>) {
    if imported.node_types.iter().any(|t| matches!(t.image.as_ref().map(|s| &s.value), Some(Image::Ami { .. }))) {
        notes.push(Note {
            path: YamlPath::root(),
            message: "ImageId values are kept as explicit AMIs; if they are Amazon Linux 2023, import again with \
                      --resolve-images to write `image: al2023` (asks SSM for the current AL2023 AMIs)"
                .into(),
        });
    }
}
