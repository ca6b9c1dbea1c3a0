//! timm's state-dict names in torchvision's, family by family: the same networks, named as
//! timm names them (tables in `../shared/notes/families_export_tools.md` §2.2, each checked by
//! `tests/tests/suite/timm_hub.rs` tensor by tensor against timm itself).

use regex::Regex;
use tch::Tensor;

use crate::checkpoint::StateDict;
use crate::error::{Error, Result};

/// A family's renaming: `(timm pattern, torchvision replacement)` pairs tried in order, the
/// first match wins; a name no pair matches is an error naming it.
type Rules = &'static [(&'static str, &'static str)];

/// ResNet, ResNeXt and Wide ResNet: timm keeps torchvision's names.
const RESNET: Rules = &[(r"^(.*)$", "$1")];

/// ConvNeXt: timm's `stem`/`stages`/`head` in torchvision's `features`/`classifier` (the
/// downsampling layers are the even `features` entries, the stages the odd ones).
const CONVNEXT: Rules = &[
    (r"^stem\.(\d)\.(weight|bias)$", "features.0.$1.$2"),
    (
        r"^stages\.(\d)\.downsample\.(\d)\.(weight|bias)$",
        "features.{2s}.$2.$3",
    ),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.conv_dw\.(weight|bias)$",
        "features.{2s+1}.$2.block.0.$3",
    ),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.norm\.(weight|bias)$",
        "features.{2s+1}.$2.block.2.$3",
    ),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$",
        "features.{2s+1}.$2.block.3.$3",
    ),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$",
        "features.{2s+1}.$2.block.5.$3",
    ),
    (
        r"^stages\.(\d)\.blocks\.(\d+)\.gamma$",
        "features.{2s+1}.$2.layer_scale",
    ),
    (r"^head\.norm\.(weight|bias)$", "classifier.0.$1"),
    (r"^head\.fc\.(weight|bias)$", "classifier.2.$1"),
];

/// ViT (and DeiT without its distillation token): both fuse q, k and v into one projection.
const VIT: Rules = &[
    (r"^cls_token$", "class_token"),
    (r"^pos_embed$", "encoder.pos_embedding"),
    (r"^patch_embed\.proj\.(weight|bias)$", "conv_proj.$1"),
    (
        r"^blocks\.(\d+)\.norm1\.(weight|bias)$",
        "encoder.layers.encoder_layer_$1.ln_1.$2",
    ),
    (
        r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$",
        "encoder.layers.encoder_layer_$1.self_attention.in_proj_$2",
    ),
    (
        r"^blocks\.(\d+)\.attn\.proj\.(weight|bias)$",
        "encoder.layers.encoder_layer_$1.self_attention.out_proj.$2",
    ),
    (
        r"^blocks\.(\d+)\.norm2\.(weight|bias)$",
        "encoder.layers.encoder_layer_$1.ln_2.$2",
    ),
    (
        r"^blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$",
        "encoder.layers.encoder_layer_$1.mlp.0.$2",
    ),
    (
        r"^blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$",
        "encoder.layers.encoder_layer_$1.mlp.3.$2",
    ),
    (r"^norm\.(weight|bias)$", "encoder.ln.$1"),
    (r"^head\.(weight|bias)$", "heads.head.$1"),
];

/// Swin V1: timm's `layers.{s}` are torchvision's `features.{2s+1}` (the stages) with the
/// stage's patch merging `features.{2s}` (timm holds it at the start of the stage), the MLP's
/// `fc1`/`fc2` torchvision's `mlp.0`/`mlp.3`. timm does not save `relative_position_index`
/// ([`to_torchvision`] adds torchvision's).
const SWIN: Rules = &[
    (r"^patch_embed\.proj\.(weight|bias)$", "features.0.0.$1"),
    (r"^patch_embed\.norm\.(weight|bias)$", "features.0.2.$1"),
    (
        r"^layers\.(\d)\.downsample\.(norm|reduction)\.(weight|bias)$",
        "features.{2s}.$2.$3",
    ),
    (
        r"^layers\.(\d)\.blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj)\.(weight|bias)$",
        "features.{2s+1}.$2.$3.$4",
    ),
    (
        r"^layers\.(\d)\.blocks\.(\d+)\.attn\.(relative_position_bias_table|relative_position_index)$",
        "features.{2s+1}.$2.attn.$3",
    ),
    (
        r"^layers\.(\d)\.blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$",
        "features.{2s+1}.$2.mlp.0.$3",
    ),
    (
        r"^layers\.(\d)\.blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$",
        "features.{2s+1}.$2.mlp.3.$3",
    ),
    (r"^norm\.(weight|bias)$", "norm.$1"),
    (r"^head\.fc\.(weight|bias)$", "head.$1"),
];

/// RegNet X and Y: timm's `s{i}.b{k}` (k from 1) is torchvision's
/// `trunk_output.block{i}.block{i}-{k-1}`, its `conv1/2/3` the block's `f.a/b/c`, its
/// `downsample` the block's `proj`.
const REGNET: Rules = &[
    (r"^stem\.conv\.weight$", "stem.0.weight"),
    (r"^stem\.bn\.(\w+)$", "stem.1.$1"),
    (
        r"^s(\d)\.b(\d+)\.conv1\.conv\.weight$",
        "trunk_output.block$1.block$1-{k-1}.f.a.0.weight",
    ),
    (
        r"^s(\d)\.b(\d+)\.conv1\.bn\.(\w+)$",
        "trunk_output.block$1.block$1-{k-1}.f.a.1.$3",
    ),
    (
        r"^s(\d)\.b(\d+)\.conv2\.conv\.weight$",
        "trunk_output.block$1.block$1-{k-1}.f.b.0.weight",
    ),
    (
        r"^s(\d)\.b(\d+)\.conv2\.bn\.(\w+)$",
        "trunk_output.block$1.block$1-{k-1}.f.b.1.$3",
    ),
    (
        r"^s(\d)\.b(\d+)\.conv3\.conv\.weight$",
        "trunk_output.block$1.block$1-{k-1}.f.c.0.weight",
    ),
    (
        r"^s(\d)\.b(\d+)\.conv3\.bn\.(\w+)$",
        "trunk_output.block$1.block$1-{k-1}.f.c.1.$3",
    ),
    (
        r"^s(\d)\.b(\d+)\.se\.(fc[12])\.(weight|bias)$",
        "trunk_output.block$1.block$1-{k-1}.f.se.$3.$4",
    ),
    (
        r"^s(\d)\.b(\d+)\.downsample\.conv\.weight$",
        "trunk_output.block$1.block$1-{k-1}.proj.0.weight",
    ),
    (
        r"^s(\d)\.b(\d+)\.downsample\.bn\.(\w+)$",
        "trunk_output.block$1.block$1-{k-1}.proj.1.$3",
    ),
    (r"^head\.fc\.(weight|bias)$", "fc.$1"),
];

/// DINOv2: the reference's names but for the registers and ViT-g's SwiGLU (timm's `fc1`/`fc2`
/// are the reference's `w12`/`w3` there; [`to_torchvision`] sees to it).
const DINOV2: Rules = &[
    (r"^reg_token$", "register_tokens"),
    (r"^(cls_token|pos_embed)$", "$1"),
    (r"^patch_embed\.proj\.(weight|bias)$", "patch_embed.proj.$1"),
    (
        r"^blocks\.(\d+)\.((?:norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(?:weight|bias)|ls1\.gamma|ls2\.gamma)$",
        "blocks.$1.$2",
    ),
    (r"^norm\.(weight|bias)$", "norm.$1"),
    (r"^head\.(weight|bias)$", "head.$1"),
];

/// The torchvision family a timm architecture belongs to, for its renaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    ResNet,
    ConvNext,
    /// EfficientNet V1/V2 (timm's own and the `tf_` ports): numbered by block contents
    /// ([`super::efficientnet_builder`]).
    EfficientNet,
    /// MobileNetV3 large/small (timm's own and the `tf_` ports), as EfficientNet.
    MobileNetV3,
    RegNet,
    Swin,
    Vit,
    /// DINOv2: timm keeps the reference's names (see [`dinov2_to_reference`]).
    Dinov2,
}

impl Family {
    fn rules(self) -> Rules {
        match self {
            Family::ResNet => RESNET,
            Family::ConvNext => CONVNEXT,
            // Numbered by block contents, not by pattern.
            Family::EfficientNet | Family::MobileNetV3 => &[],
            Family::RegNet => REGNET,
            Family::Swin => SWIN,
            Family::Vit => VIT,
            Family::Dinov2 => DINOV2,
        }
    }
}

/// `sd` (timm's names) under torchvision's names for `family`; `arch` names the model in errors.
/// Tensors change shape only where torchvision's module holds them so: ConvNeXt's layer scale is
/// `(C, 1, 1)` in torchvision, `(C,)` in timm.
pub(super) fn to_torchvision(family: Family, arch: &str, sd: &StateDict) -> Result<StateDict> {
    use super::efficientnet_builder::{self as builder, Layout};
    match family {
        Family::EfficientNet => return builder::to_torchvision(Layout::EfficientNet, arch, sd),
        Family::MobileNetV3 => return builder::to_torchvision(Layout::MobileNetV3, arch, sd),
        _ => {}
    }
    let rules: Vec<(Regex, &str)> = family
        .rules()
        .iter()
        .map(|(p, r)| Regex::new(p).map(|re| (re, *r)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Invalid(format!("timm renaming table: {e}")))?;
    let mut out = StateDict::new();
    for (name, t) in sd.iter() {
        let (re, replacement) =
            rules
                .iter()
                .find(|(re, _)| re.is_match(name))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                    "{arch}: timm tensor {name} has no torchvision counterpart (a variant of the \
                     architecture ferrovis does not build)"
                ))
                })?;
        let mut renamed = String::new();
        if let Some(caps) = re.captures(name) {
            // Stage s of timm's is torchvision's `features` entry 2s + 1 in ConvNeXt (its
            // downsampling 2s), s + 1 in EfficientNet (after the stem).
            let stage: i64 = caps
                .get(1)
                .and_then(|m| m.as_str().parse().ok())
                .unwrap_or(0);
            // RegNet's blocks count from 1 in timm, from 0 in torchvision.
            let block: i64 = caps
                .get(2)
                .and_then(|m| m.as_str().parse().ok())
                .unwrap_or(1);
            let replacement = replacement
                .replace("{2s+1}", &(2 * stage + 1).to_string())
                .replace("{2s}", &(2 * stage).to_string())
                .replace("{s+1}", &(stage + 1).to_string())
                .replace("{k-1}", &(block - 1).to_string());
            caps.expand(&replacement, &mut renamed);
        }
        let tensor: Tensor = if family == Family::ConvNext && name.ends_with(".gamma") {
            t.view([-1, 1, 1])
        } else {
            t.shallow_clone()
        };
        out.insert(renamed, tensor);
    }
    if family == Family::Dinov2 {
        dinov2_to_reference(arch, &mut out)?;
    }
    if family == Family::Swin {
        add_relative_position_index(&mut out);
    }
    Ok(out)
}

/// torchvision saves each Swin attention's `relative_position_index` (a persistent buffer),
/// timm does not: the index of the window its bias table is for ((2·window − 1)² rows).
fn add_relative_position_index(sd: &mut StateDict) {
    let tables: Vec<(String, i64)> = sd
        .iter()
        .filter_map(|(n, t)| {
            let stem = n.strip_suffix("relative_position_bias_table")?;
            let span = (t.size().first().copied().unwrap_or(0) as f64)
                .sqrt()
                .round() as i64;
            Some((format!("{stem}relative_position_index"), (span + 1) / 2))
        })
        .collect();
    for (name, window) in tables {
        if sd.get(&name).is_none() {
            let index = Tensor::from_slice(&crate::backbone::swin::relative_position_index(window));
            sd.insert(name, index);
        }
    }
}

/// What timm changed in DINOv2 when it ported it: ViT-g's SwiGLU projections are `fc1`/`fc2`
/// (the reference's `w12`/`w3`), and the register models' positional embedding has no entry
/// for the class token (timm added it to `cls_token` instead: the reference's layout is that
/// with a zero entry, the same sums).
fn dinov2_to_reference(arch: &str, sd: &mut StateDict) -> Result<()> {
    if arch.contains("giant") {
        let names: Vec<String> = sd.iter().map(|(n, _)| n.to_string()).collect();
        for name in names.iter().filter(|n| n.contains(".mlp.fc")) {
            if let Some(t) = sd.remove(name) {
                let renamed = name
                    .replace(".mlp.fc1.", ".mlp.w12.")
                    .replace(".mlp.fc2.", ".mlp.w3.");
                sd.insert(renamed, t);
            }
        }
    }
    if let Some(pos) = sd.get("pos_embed") {
        let size = pos.size();
        if size.len() != 3 {
            return Err(Error::Invalid(format!(
                "{arch}: pos_embed is {size:?}, not (1, positions, width)"
            )));
        }
        let side = (size[1] as f64).sqrt().round() as i64;
        if side * side == size[1] {
            let zero = Tensor::zeros([1, 1, size[2]], (pos.kind(), pos.device()));
            let with_class = Tensor::cat(&[zero, pos.shallow_clone()], 1);
            sd.insert("pos_embed", with_class);
        }
    }
    Ok(())
}
