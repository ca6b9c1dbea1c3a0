//! What `--weights` names for `val`, `predict` and `export`, whichever family trained it: a run
//! folder (its `detect.json` says the architecture), or a checkpoint file or weights name on its
//! own, whose architecture is `arch=` or, when not given, read off its tensor names.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use ferrovis_core::checkpoint::{self, StateDict};
use ferrovis_core::run::resolve_weights;

use crate::config::Family;
use crate::run::RunMeta;

/// A model's weights with the architecture they are for.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsSource {
    /// The checkpoint file.
    pub file: PathBuf,
    /// The architecture (`yolov8`, `yolo11`, `fasterrcnn_resnet50_fpn`, …).
    pub arch: String,
    /// Its family.
    pub family: Family,
    /// The run folder's record, when the weights are a run's.
    pub meta: Option<RunMeta>,
}

/// What `weights` (a run folder, a file in one, a checkpoint, a weights name) holds: `arch` when
/// given (a run's own record must agree), else the run's record, else the architecture its
/// tensors imply ([`infer_arch`]).
pub fn identify(weights: &Path, arch: Option<&str>) -> Result<WeightsSource> {
    let resolved = resolve_weights(weights)?;
    let meta: Option<RunMeta> = resolved.meta()?;
    let recorded = meta
        .as_ref()
        .map(|m| m.arch.clone().unwrap_or_else(|| "yolov8".into()));
    let arch = match (arch, recorded) {
        (Some(given), Some(run)) if given != run => bail!(
            "{}: arch={given}, but its run folder records {run}",
            weights.display()
        ),
        (Some(given), _) => given.to_string(),
        (None, Some(run)) => run,
        (None, None) => infer_arch(&checkpoint::read(&resolved.file)?, &resolved.file)?,
    };
    Ok(WeightsSource {
        file: resolved.file,
        family: Family::of(&arch)?,
        arch,
        meta,
    })
}

/// The architecture a checkpoint's tensors imply: YOLOv8 or YOLO11 (`model.N.*`; the Detect
/// head tells which), torchvision's Faster
/// R-CNNs (`rpn.*`, `roi_heads.*`; the backbone and RPN convolutions tell which), FCOS
/// (`head.regression_head.bbox_ctrness.*`), RetinaNets (`head.classification_head.cls_logits.*`
/// without FCOS's centre-ness; GroupNorm in the towers means v2) or SSDs
/// (`head.classification_head.*`; the backbone tells which). Where two architectures share every
/// tensor (MobileNetV3 Faster R-CNN at 800 or 320 pixels) the error names both: give `arch=`.
pub fn infer_arch(sd: &StateDict, file: &Path) -> Result<String> {
    let has = |name: &str| sd.get(name).is_some();
    let any_prefix = |prefix: &str| sd.names().any(|n| n.starts_with(prefix));
    let arch = if has("model.0.conv.weight") {
        crate::yolo::weights::shape_of(sd, file)?.version.prefix()
    } else if has("rpn.head.cls_logits.weight") {
        if has("backbone.body.conv1.weight") {
            if has("rpn.head.conv.1.0.weight") {
                "fasterrcnn_resnet50_fpn_v2"
            } else {
                "fasterrcnn_resnet50_fpn"
            }
        } else if has("backbone.body.0.0.weight") {
            bail!(
                "{}: a MobileNetV3-Large Faster R-CNN, which fasterrcnn_mobilenet_v3_large_fpn \
                 and fasterrcnn_mobilenet_v3_large_320_fpn share tensor for tensor: give arch= \
                 with the one it was trained as",
                file.display()
            )
        } else {
            bail!(
                "{}: a Faster R-CNN on a backbone its tensors do not name: give \
                 arch=fasterrcnn_<backbone>",
                file.display()
            )
        }
    } else if has("head.regression_head.bbox_ctrness.weight") {
        "fcos_resnet50_fpn"
    } else if any_prefix("head.classification_head.cls_logits.") {
        // RetinaNet v2's towers have GroupNorm after each convolution (`conv.i.1`).
        if has("head.classification_head.conv.0.1.weight") {
            "retinanet_resnet50_fpn_v2"
        } else {
            "retinanet_resnet50_fpn"
        }
    } else if any_prefix("head.classification_head.") {
        if has("backbone.scale_weight") {
            "ssd300_vgg16"
        } else {
            match sd
                .get("backbone.features.0.0.0.weight")
                .map(|t| t.size()[0])
            {
                Some(16) => "ssdlite320_mobilenet_v3_large",
                Some(32) => "ssdlite320_mobilenet_v2",
                _ => bail!(
                    "{}: an SSD whose backbone its tensors do not name: give arch=",
                    file.display()
                ),
            }
        }
    } else {
        bail!(
            "{}: not a detector checkpoint ferrovis knows (no model.0.conv.weight of YOLO, no \
             rpn.* of Faster R-CNN, no head.classification_head.* of SSD or RetinaNet); give \
             arch= if it is one",
            file.display()
        )
    };
    Ok(arch.to_string())
}
