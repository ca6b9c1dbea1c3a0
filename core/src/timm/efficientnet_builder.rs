//! The networks timm builds with its EfficientNet builder — EfficientNet V1 and V2 (its own and
//! the `tf_` ports) and MobileNetV3 — in torchvision's names.
//!
//! timm names a block's parts by role (`conv_pw`/`bn1` the expansion, `conv_dw`/`bn2` the
//! depthwise convolution, `se`, `conv_pwl`/`bn3` the projection, `conv_exp` a fused
//! expansion, `conv` a plain convolution block); torchvision numbers the parts a block holds in
//! the order they run (`block.0`, `block.1`, …), so a part's number depends on which others the
//! block has. The block kind is read from the parts present, then the parts are numbered.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use tch::Tensor;

use crate::checkpoint::StateDict;
use crate::error::{Error, Result};

/// Which torchvision layout the network's `features` follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// EfficientNet: `features.{stage + 1}.{block}.block.{part}`, the head convolution after the
    /// last stage, `classifier.1` the linear layer.
    EfficientNet,
    /// MobileNetV3: every block one `features` entry (`features.{n}.block.{part}`, the last a
    /// plain convolution `features.{n}.0`), the head convolution `classifier.0` (a linear layer
    /// in torchvision, a 1×1 convolution in timm), `classifier.3` the output layer.
    MobileNetV3,
}

/// One torchvision part of a block: a convolution with its BatchNorm, or a squeeze-excite.
enum Part {
    ConvBn {
        conv: &'static str,
        bn: &'static str,
    },
    SqueezeExcite,
}

/// The parts of a block in the order they run, from the members timm's block holds.
fn block_parts(members: &BTreeSet<String>) -> Option<Vec<Part>> {
    let has = |m: &str| members.contains(m);
    let se = has("se");
    let mut parts = Vec::new();
    let push_se = |parts: &mut Vec<Part>| {
        if se {
            parts.push(Part::SqueezeExcite);
        }
    };
    let conv_bn = |conv, bn| Part::ConvBn { conv, bn };
    if has("conv_exp") {
        // Fused inverted residual: expansion, [SE], projection.
        parts.push(conv_bn("conv_exp", "bn1"));
        push_se(&mut parts);
        parts.push(conv_bn("conv_pwl", "bn2"));
    } else if has("conv_pwl") {
        // Inverted residual: expansion, depthwise, [SE], projection.
        parts.push(conv_bn("conv_pw", "bn1"));
        parts.push(conv_bn("conv_dw", "bn2"));
        push_se(&mut parts);
        parts.push(conv_bn("conv_pwl", "bn3"));
    } else if has("conv_dw") {
        // Depthwise-separable: depthwise, [SE], pointwise projection.
        parts.push(conv_bn("conv_dw", "bn1"));
        push_se(&mut parts);
        parts.push(conv_bn("conv_pw", "bn2"));
    } else if has("conv") {
        parts.push(conv_bn("conv", "bn1"));
    } else {
        return None;
    }
    Some(parts)
}

/// `sd` (timm's names) under torchvision's names for `layout`; `arch` names the model in errors.
pub(super) fn to_torchvision(layout: Layout, arch: &str, sd: &StateDict) -> Result<StateDict> {
    let invalid = |msg: String| Error::Invalid(format!("{arch}: {msg}"));
    let block_re = Regex::new(r"^blocks\.(\d+)\.(\d+)\.(\w+)\.(.+)$")
        .map_err(|e| invalid(format!("renaming pattern: {e}")))?;
    // Every block's members, in (stage, block) order.
    let mut blocks: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
    for (name, _) in sd.iter() {
        if let Some(c) = block_re.captures(name) {
            let (s, b) = (c[1].parse(), c[2].parse());
            if let (Ok(s), Ok(b)) = (s, b) {
                blocks.entry((s, b)).or_default().insert(c[3].to_string());
            }
        }
    }
    let stages = blocks.keys().map(|(s, _)| s + 1).max().unwrap_or(0);
    // Each block's torchvision path and its parts' numbers by timm member.
    let mut paths: BTreeMap<(usize, usize), (String, bool, Vec<Part>)> = BTreeMap::new();
    for (flat, (&(s, b), members)) in blocks.iter().enumerate() {
        let parts = block_parts(members).ok_or_else(|| {
            invalid(format!(
                "timm block blocks.{s}.{b} holds {members:?}, no block kind ferrovis builds"
            ))
        })?;
        let (path, plain) = match layout {
            Layout::EfficientNet => (format!("features.{}.{b}.block", s + 1), false),
            // MobileNetV3's last stage is one plain convolution, not a block.
            Layout::MobileNetV3 if s + 1 == stages && members.contains("conv") => {
                (format!("features.{}", flat + 1), true)
            }
            Layout::MobileNetV3 => (format!("features.{}.block", flat + 1), false),
        };
        paths.insert((s, b), (path, plain, parts));
    }
    let head = match layout {
        Layout::EfficientNet => format!("features.{}", stages + 1),
        Layout::MobileNetV3 => String::new(),
    };
    let mut out = StateDict::new();
    for (name, t) in sd.iter() {
        let unmapped = || {
            invalid(format!(
                "timm tensor {name} has no torchvision counterpart (a variant of the \
                 architecture ferrovis does not build)"
            ))
        };
        let renamed = if let Some(c) = block_re.captures(name) {
            let key = (
                c[1].parse().map_err(|_| unmapped())?,
                c[2].parse().map_err(|_| unmapped())?,
            );
            let (path, plain, parts) = paths.get(&key).ok_or_else(unmapped)?;
            let (member, rest) = (&c[3], &c[4]);
            let mut found = None;
            for (k, part) in parts.iter().enumerate() {
                let prefix = if *plain {
                    path.clone()
                } else {
                    format!("{path}.{k}")
                };
                found = match part {
                    Part::ConvBn { conv, .. } if *conv == member && rest == "weight" => {
                        Some(format!("{prefix}.0.weight"))
                    }
                    Part::ConvBn { bn, .. } if *bn == member => Some(format!("{prefix}.1.{rest}")),
                    Part::SqueezeExcite if member == "se" => match rest.split_once('.') {
                        Some(("conv_reduce", p)) => Some(format!("{prefix}.fc1.{p}")),
                        Some(("conv_expand", p)) => Some(format!("{prefix}.fc2.{p}")),
                        _ => None,
                    },
                    _ => None,
                };
                if found.is_some() {
                    break;
                }
            }
            found.ok_or_else(unmapped)?
        } else {
            match (layout, name.split_once('.')) {
                (_, Some(("conv_stem", "weight"))) => "features.0.0.weight".to_string(),
                (_, Some(("bn1", stat))) => format!("features.0.1.{stat}"),
                (Layout::EfficientNet, Some(("conv_head", "weight"))) => {
                    format!("{head}.0.weight")
                }
                (Layout::EfficientNet, Some(("bn2", stat))) => format!("{head}.1.{stat}"),
                (Layout::EfficientNet, Some(("classifier", p @ ("weight" | "bias")))) => {
                    format!("classifier.1.{p}")
                }
                (Layout::MobileNetV3, Some(("conv_head", p @ ("weight" | "bias")))) => {
                    format!("classifier.0.{p}")
                }
                (Layout::MobileNetV3, Some(("classifier", p @ ("weight" | "bias")))) => {
                    format!("classifier.3.{p}")
                }
                _ => return Err(unmapped()),
            }
        };
        // torchvision's MobileNetV3 head is a linear layer over the pooled features: timm's
        // 1×1 convolution's kernel without its two unit dimensions.
        let tensor: Tensor = if renamed == "classifier.0.weight" && t.dim() == 4 {
            t.flatten(1, 3)
        } else {
            t.shallow_clone()
        };
        out.insert(renamed, tensor);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn sd(names: &[&str]) -> StateDict {
        let mut sd = StateDict::new();
        for n in names {
            sd.insert(*n, Tensor::zeros([1], (Kind::Float, Device::Cpu)));
        }
        sd
    }

    #[test]
    fn parts_are_numbered_by_the_parts_a_block_holds() {
        let names = [
            "conv_stem.weight",
            "bn1.weight",
            "blocks.0.0.conv_dw.weight",
            "blocks.0.0.bn1.running_var",
            "blocks.0.0.conv_pw.weight",
            "blocks.0.0.bn2.weight",
            "blocks.1.0.conv_pw.weight",
            "blocks.1.0.bn1.weight",
            "blocks.1.0.conv_dw.weight",
            "blocks.1.0.bn2.weight",
            "blocks.1.0.se.conv_reduce.bias",
            "blocks.1.0.conv_pwl.weight",
            "blocks.1.0.bn3.bias",
            "blocks.2.0.conv.weight",
            "blocks.2.0.bn1.weight",
            "conv_head.weight",
            "classifier.bias",
        ];
        let m = to_torchvision(Layout::MobileNetV3, "m", &sd(&names)).unwrap();
        let got: BTreeSet<String> = m.iter().map(|(n, _)| n.to_string()).collect();
        for want in [
            "features.0.0.weight",
            "features.0.1.weight",
            "features.1.block.0.0.weight",
            "features.1.block.0.1.running_var",
            "features.1.block.1.0.weight",
            "features.1.block.1.1.weight",
            "features.2.block.0.0.weight",
            "features.2.block.1.1.weight",
            "features.2.block.2.fc1.bias",
            "features.2.block.3.0.weight",
            "features.2.block.3.1.bias",
            "features.3.0.weight",
            "features.3.1.weight",
            "classifier.0.weight",
            "classifier.3.bias",
        ] {
            assert!(got.contains(want), "{want} missing from {got:?}");
        }
        let e = to_torchvision(Layout::EfficientNet, "e", &sd(&names)).unwrap();
        assert!(e.get("features.3.0.block.0.0.weight").is_some());
        assert!(e.get("features.4.0.weight").is_some());
        assert!(e.get("classifier.1.bias").is_some());
        let err = to_torchvision(
            Layout::EfficientNet,
            "e",
            &sd(&["blocks.0.0.conv_dw.scale"]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("blocks.0.0.conv_dw.scale"), "{err}");
    }
}
