//! `detect weights inspect --arch NAME`: the detectors this binary builds, by name, with their
//! COCO class counts (80 for YOLOv8 and YOLO11 as Ultralytics releases them; 90 and the background for
//! torchvision's), so their variables can be listed as a checkpoint's are.

use crate::config::{DetectConfig, Family};
use crate::yolo::model::{Version, Yolo, YoloConfig};

/// Builds detector `arch` under `p` (the root of an empty VarStore): `yolov8n` … `yolo11x`, or a
/// torchvision architecture (`fasterrcnn_resnet50_fpn`, `ssd300_vgg16`, …). `Ok(false)` for a
/// name that is no detector, which the caller then tries as a backbone.
pub(crate) fn build(arch: &str, p: &tch::nn::Path) -> anyhow::Result<bool> {
    if let Some((version, scale)) = Version::parse_model_name(arch) {
        let _model = Yolo::new(
            p,
            YoloConfig {
                version,
                scale,
                num_classes: 80,
            },
        );
        return Ok(true);
    }
    match Family::of(arch) {
        Ok(family) if family.is_torchvision() => {
            let cfg = DetectConfig {
                arch: arch.to_string(),
                family,
                ..DetectConfig::default()
            };
            // As torchvision builds its COCO models from their weights: frozen BatchNorm.
            crate::torchvision::model::build_net(p, &cfg, 90, true, false)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}
