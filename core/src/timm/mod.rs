//! timm checkpoints from the Hugging Face Hub (`hf-hub:timm/<arch>.<tag>`, or a folder holding
//! the same two files): `model.safetensors` in timm's names and the `config.json` timm writes
//! beside it, read into the torchvision-named backbone that builds the same network.
//!
//! [`read`] gives a [`HubCheckpoint`]: the ferrovis architecture (`convnext_tiny`, `vit_b_16`,
//! …) and image size to build, the state dict renamed to torchvision's names (`names`, one table
//! a family, every tensor accounted for or a named error), and the [`TimmConfig`]: class count,
//! label names and the preprocessing ([`TimmConfig::pretrained_cfg`]) a task uses unless told
//! otherwise.
//!
//! Built: ResNet / ResNeXt / Wide ResNet (timm keeps torchvision's names, `a1_in1k`- and
//! `tv_in1k`-style tags alike), ConvNeXt T/S/B/L, EfficientNet B0–B7 and V2 S/M/L and
//! MobileNetV3 large/small (timm's own and the `tf_` ports with TensorFlow's SAME padding and
//! BatchNorm eps), RegNet X/Y (the 15 whose configuration is torchvision's), Swin T/S/B (window
//! 7), ViT B/L/H and DeiT-B (fused q/k/v in both) at any of their sizes, DINOv2 ViT-S/B/L/g with and without registers
//! (`vit_small_patch14_dinov2`, `vit_base_patch14_reg4_dinov2`, in the reference's names). Other
//! timm architectures are refused with their name.

pub mod config;
mod efficientnet_builder;
mod names;

use std::path::{Path, PathBuf};

pub use config::TimmConfig;
use names::Family;

use crate::backbone::{PosEmbedResize, SourceOptions};
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::hub::{Hub, HubCheckpoint};
use crate::nn::NormLayer;

/// The two files of a timm checkpoint.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// timm's configuration beside the weights.
pub const CONFIG_FILE: &str = "config.json";

/// What ferrovis builds for a timm architecture.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// The ferrovis architecture.
    arch: String,
    /// The renaming family.
    family: Family,
    /// The image size the name carries (ViT's `_224`, `_384`).
    image_size: Option<i64>,
    /// timm's BatchNorm settings and `tf_` padding where they differ from torchvision's.
    build: SourceOptions,
}

impl Target {
    fn new(arch: impl Into<String>, family: Family) -> Self {
        Target {
            arch: arch.into(),
            family,
            image_size: None,
            build: SourceOptions::default(),
        }
    }
}

/// timm's BatchNorm: PyTorch's defaults, or TensorFlow's eps in the `tf_` ports.
fn timm_batch_norm(tf: bool) -> NormLayer {
    NormLayer::BatchNormWith {
        eps: if tf { 1e-3 } else { 1e-5 },
        momentum: 0.1,
    }
}

/// For a timm architecture name, what ferrovis builds.
fn torchvision_arch(timm: &str) -> Result<Target> {
    // timm's ResNet family and ConvNeXt sizes use torchvision's names for the same networks.
    let named = |name: &str, prefixes: &[&str]| {
        crate::backbone::NAMES
            .iter()
            .any(|n| *n == name && prefixes.iter().any(|p| n.starts_with(p)))
    };
    if named(timm, &["resnet", "resnext", "wide_resnet"]) {
        return Ok(Target::new(timm, Family::ResNet));
    }
    if named(timm, &["convnext_"]) {
        return Ok(Target::new(timm, Family::ConvNext));
    }
    // timm's RegNets whose configuration is torchvision's (checked network by network: the
    // `_tv` ones are timm's copies where its own 400MF X / 800MF Y / 8GF Y differ).
    const REGNETS: [(&str, &str); 15] = [
        ("regnetx_004_tv", "regnet_x_400mf"),
        ("regnetx_008", "regnet_x_800mf"),
        ("regnetx_016", "regnet_x_1_6gf"),
        ("regnetx_032", "regnet_x_3_2gf"),
        ("regnetx_080", "regnet_x_8gf"),
        ("regnetx_160", "regnet_x_16gf"),
        ("regnetx_320", "regnet_x_32gf"),
        ("regnety_004", "regnet_y_400mf"),
        ("regnety_008_tv", "regnet_y_800mf"),
        ("regnety_016", "regnet_y_1_6gf"),
        ("regnety_032", "regnet_y_3_2gf"),
        ("regnety_080_tv", "regnet_y_8gf"),
        ("regnety_160", "regnet_y_16gf"),
        ("regnety_320", "regnet_y_32gf"),
        ("regnety_1280", "regnet_y_128gf"),
    ];
    if let Some((_, arch)) = REGNETS.iter().find(|(t, _)| *t == timm) {
        return Ok(Target::new(*arch, Family::RegNet));
    }
    // EfficientNet B0–B7 and V2 S/M/L, timm's own (PyTorch's BatchNorm eps, where torchvision's
    // B5–B7 and V2 use TensorFlow's) and the `tf_` ports (SAME padding, TensorFlow's eps).
    let (tf, base) = match timm.strip_prefix("tf_") {
        Some(rest) => (true, rest),
        None => (false, timm),
    };
    // MobileNetV3 at width 1.0 (`mobilenetv3_large_100`, `tf_mobilenetv3_small_100`) comes
    // from the same builder.
    let builder = match base {
        b if b.starts_with("efficientnet_b") => Some((b.to_string(), Family::EfficientNet)),
        // timm's own V2s with pretrained weights are the `_rw` variants, another network.
        b if tf && b.starts_with("efficientnetv2_") => Some((
            b.replace("efficientnetv2_", "efficientnet_v2_"),
            Family::EfficientNet,
        )),
        "mobilenetv3_large_100" => Some(("mobilenet_v3_large".into(), Family::MobileNetV3)),
        "mobilenetv3_small_100" => Some(("mobilenet_v3_small".into(), Family::MobileNetV3)),
        _ => None,
    };
    if let Some((arch, family)) =
        builder.filter(|(a, _)| named(a, &["efficientnet_", "mobilenet_v3"]))
    {
        let build = SourceOptions {
            norm: Some(timm_batch_norm(tf)),
            tf_same_padding: tf,
            ..Default::default()
        };
        return Ok(Target {
            build,
            ..Target::new(arch, family)
        });
    }
    // Swin V1 T/S/B with 4-px patches and 7-token windows at 224.
    let swin = match timm {
        "swin_tiny_patch4_window7_224" => Some("swin_t"),
        "swin_small_patch4_window7_224" => Some("swin_s"),
        "swin_base_patch4_window7_224" => Some("swin_b"),
        _ => None,
    };
    if let Some(arch) = swin {
        return Ok(Target {
            image_size: Some(224),
            ..Target::new(arch, Family::Swin)
        });
    }
    // vit_base_patch16_224, vit_large_patch16_384, deit_base_patch16_224, vit_huge_patch14_224.
    let vit = regex::Regex::new(r"^(?:vit|deit)_(base|large|huge)_patch(\d+)_(\d+)$")
        .map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(c) = vit.captures(timm) {
        let width = match &c[1] {
            "base" => "b",
            "large" => "l",
            _ => "h",
        };
        let arch = format!("vit_{width}_{}", &c[2]);
        if ["vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"].contains(&arch.as_str()) {
            return Ok(Target {
                image_size: c[3].parse().ok(),
                ..Target::new(arch, Family::Vit)
            });
        }
    }
    // DINOv2 (`vit_small_patch14_dinov2`, `vit_giant_patch14_reg4_dinov2`): the reference's
    // names, which timm keeps.
    let dinov2 = regex::Regex::new(r"^vit_(small|base|large|giant)_patch14_(reg4_)?dinov2$")
        .map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(c) = dinov2.captures(timm) {
        let width = &c[1][..1];
        let reg = if c.get(2).is_some() { "_reg" } else { "" };
        return Ok(Target::new(
            format!("dinov2_vit{width}14{reg}"),
            Family::Dinov2,
        ));
    }
    Err(Error::Invalid(format!(
        "timm architecture {timm:?} is not built: ferrovis reads timm's ResNet/ResNeXt/Wide \
         ResNet, ConvNeXt T/S/B/L, EfficientNet B0–B7 and V2 S/M/L (timm's and tf_), \
         MobileNetV3 large/small 100 (timm's and tf_), torchvision's RegNets, Swin T/S/B \
         (window 7, 224), ViT/DeiT B/L/H and DINOv2 checkpoints"
    )))
}

/// The folder holding `spec`'s two files: `hf-hub:ORG/NAME` from the Hugging Face cache
/// (downloaded first when missing and allowed), or a local folder.
pub fn snapshot(spec: &str) -> Result<(PathBuf, PathBuf)> {
    snapshot_in(&Hub::from_env(), spec)
}

/// [`snapshot`] with the caches and network rules of `hub`.
pub fn snapshot_in(hub: &Hub, spec: &str) -> Result<(PathBuf, PathBuf)> {
    if let Some(repo) = spec.strip_prefix("hf-hub:") {
        // The configuration first: it is small, and it says whether the weights are usable.
        let config = hub.fetch_hf_file(repo, CONFIG_FILE)?;
        let weights = hub.fetch_hf_file(repo, WEIGHTS_FILE)?;
        return Ok((config, weights));
    }
    let dir = Path::new(spec);
    let (config, weights) = (dir.join(CONFIG_FILE), dir.join(WEIGHTS_FILE));
    for f in [&config, &weights] {
        if !f.is_file() {
            return Err(Error::Invalid(format!(
                "{}: a timm checkpoint folder holds {CONFIG_FILE} and {WEIGHTS_FILE}; {} is missing",
                dir.display(),
                f.display()
            )));
        }
    }
    Ok((config, weights))
}

/// Whether `spec` names a timm checkpoint: `hf-hub:timm/…`, or a folder with a `config.json`
/// and `model.safetensors` (transformers' folders too: ask
/// [`crate::transformers::is_transformers`] first, as [`crate::hub::checkpoint::read`] does).
pub fn is_timm(spec: &str) -> bool {
    spec.starts_with("hf-hub:timm/")
        || (Path::new(spec).join(CONFIG_FILE).is_file()
            && Path::new(spec).join(WEIGHTS_FILE).is_file())
}

/// Reads the timm checkpoint `spec` names (see [`snapshot`]) into torchvision's names.
pub fn read(spec: &str) -> Result<HubCheckpoint> {
    read_in(&Hub::from_env(), spec)
}

/// [`read`] with the caches and network rules of `hub`.
pub fn read_in(hub: &Hub, spec: &str) -> Result<HubCheckpoint> {
    let (config_file, weights) = snapshot_in(hub, spec)?;
    let config = TimmConfig::read(&config_file)?;
    let target = torchvision_arch(&config.architecture)?;
    let image_size = target.image_size.unwrap_or(config.input_size[1]);
    let sd = checkpoint::read(&weights)?;
    let state_dict = names::to_torchvision(target.family, &config.architecture, &sd)
        .map_err(|e| Error::Invalid(format!("{}: {e}", weights.display())))?;
    // timm resizes DINOv2's positional embedding by size, antialiased.
    let build = SourceOptions {
        pos_embed_resize: (target.family == Family::Dinov2)
            .then_some(PosEmbedResize::Size { antialias: true }),
        ..target.build
    };
    Ok(HubCheckpoint {
        arch: target.arch,
        image_size,
        config,
        state_dict,
        weights,
        build,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_map_to_torchvisions() {
        let t = torchvision_arch("vit_base_patch16_384").unwrap();
        assert_eq!(
            (t.arch.as_str(), t.family, t.image_size),
            ("vit_b_16", Family::Vit, Some(384))
        );
        let t = torchvision_arch("deit_base_patch16_224").unwrap();
        assert_eq!((t.arch.as_str(), t.family), ("vit_b_16", Family::Vit));
        let t = torchvision_arch("convnext_small").unwrap();
        assert_eq!(
            (t.arch.as_str(), t.family, t.image_size),
            ("convnext_small", Family::ConvNext, None)
        );
        let t = torchvision_arch("tf_efficientnetv2_m").unwrap();
        assert_eq!(
            (t.arch.as_str(), t.build.tf_same_padding, t.build.norm),
            ("efficientnet_v2_m", true, Some(timm_batch_norm(true)))
        );
        let t = torchvision_arch("mobilenetv3_small_100").unwrap();
        assert_eq!(
            (t.arch.as_str(), t.build.tf_same_padding, t.build.norm),
            ("mobilenet_v3_small", false, Some(timm_batch_norm(false)))
        );
        let t = torchvision_arch("swin_small_patch4_window7_224").unwrap();
        assert_eq!((t.arch.as_str(), t.family), ("swin_s", Family::Swin));
        for refused in [
            "vit_small_patch16_224",
            "resnet50d",
            "efficientnetv2_rw_s",
            "mobilenetv3_large_075",
            "swin_large_patch4_window12_384",
        ] {
            let err = torchvision_arch(refused).unwrap_err().to_string();
            assert!(err.contains(refused), "{err}");
        }
    }
}
