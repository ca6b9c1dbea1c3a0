//! `segment demo`: synthetic shapes with their masks, a U-Net trained on them, the per-class IoU
//! table and predictions a person can look at.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ferrovis_core::device::parse_device;
use ferrovis_core::engine::RunControl;
use ferrovis_data::synthetic::{self, ShapesConfig};

use crate::config::{Mode, SegmentConfig};
use crate::infer::InferOptions;
use crate::{predict, train};

/// torchvision's ImageNet MobileNetV2 when no --weights is given: in `$FERROVIS_WEIGHTS` or
/// torch.hub's cache, else fetched by its registry name unless offline
/// (`ferrovis_core::cli::demo_weights`).
const MOBILENET_V2: &str = "mobilenet_v2-b0353104.pth";

/// The demo's configuration for data in `data` and runs under `out`: a U-Net on MobileNetV2
/// from `weights` when given, else on a ResNet18 from random initialisation.
pub fn config(data: &Path, out: &Path, weights: Option<&Path>, epochs: usize) -> SegmentConfig {
    let mut cfg = SegmentConfig::default();
    cfg.data.images = data.join("train/images").display().to_string();
    cfg.data.masks = data.join("train/masks").display().to_string();
    cfg.data.val_images = data.join("val/images").display().to_string();
    cfg.data.val_masks = data.join("val/masks").display().to_string();
    cfg.data.image_size = 96;
    cfg.data.scale = (0.75, 1.25);
    cfg.data.batch_size = 8;
    cfg.train.epochs = epochs;
    cfg.train.optimizer = "adamw".into();
    cfg.train.lr = 3e-3;
    cfg.train.weight_decay = 1e-4;
    cfg.train.loss = "ce+dice".into();
    cfg.train.project = out.join("segment").display().to_string();
    match weights {
        Some(w) => {
            cfg.model.encoder = "mobilenet_v2".into();
            cfg.model.weights = w.display().to_string();
            cfg.train.mode = Mode::FineTune;
            cfg.train.encoder_lr_scale = 0.1;
        }
        None => {
            cfg.model.encoder = "resnet18".into();
            cfg.train.encoder_lr_scale = 1.0;
        }
    }
    cfg
}

/// Generates the data, trains, validates, predicts on the validation images.
pub fn run(out: &Path, weights: Option<PathBuf>, epochs: usize) -> Result<()> {
    let data = out.join("shapes-segment");
    let shapes = ShapesConfig {
        seed: 0,
        image_size: 96,
        train: 80,
        val: 20,
        classes: ["circle", "square", "triangle"].map(String::from).to_vec(),
        max_objects: 3,
    };
    if !data.join("val").is_dir() {
        synthetic::write_segmentation(&data, &shapes)?;
    }
    println!(
        "data: synthetic shapes masks (background + circle, square, triangle; 80 + 20 images) in {}",
        data.display()
    );
    let weights = weights.or_else(|| {
        ferrovis_core::cli::demo_weights(&[MOBILENET_V2], "mobilenet_v2:IMAGENET1K_V1")
    });
    if weights.is_none() {
        println!(
            "no pretrained weights found: the U-Net's ResNet18 encoder starts from random \
             initialisation. For transfer learning, pass --weights with torchvision's \
             mobilenet_v2-b0353104.pth (it loads as it is) or set FERROVIS_WEIGHTS."
        );
    }
    let cfg = config(&data, out, weights.as_deref(), epochs);
    let summary = train::train(&cfg, &RunControl::default(), None)?;
    if let Some(e) = &summary.last {
        println!("\n{}", e.table());
    }
    println!(
        "best validation mIoU {:.4} at epoch {} after {:.0} s",
        summary.best_miou.0, summary.best_miou.1, summary.seconds
    );
    let device = parse_device(&cfg.train.device)?;
    let loaded = predict::load_model(&summary.run, None, None, device)?;
    let preds = summary.run.join("predict");
    let opts = InferOptions {
        mode: loaded.meta.infer,
        size: loaded.meta.infer_size,
        flip: false,
        channels_last: false,
    };
    let images: Vec<PathBuf> = (0..4)
        .map(|i| data.join(format!("val/images/{i:04}.png")))
        .collect();
    predict::predict(&loaded, &images, &preds, &opts, device)?;
    println!(
        "run folder: {}; masks, colour masks and overlays in {}",
        summary.run.display(),
        preds.display()
    );
    Ok(())
}
