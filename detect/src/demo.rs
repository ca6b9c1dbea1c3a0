//! `detect demo`: transfer learning on synthetic shapes, end to end on a CPU in minutes.
//!
//! YOLOv8 ([`run`]):
//! 1. pretrain YOLOv8n from scratch on circles, squares and triangles;
//! 2. fine-tune that model on stars, hexagons and crosses with `freeze=10` (backbone frozen, a new
//!    class branch);
//! 3. train the same model from scratch on the new shapes for the same epochs;
//! 4. print mAP50 of both on the new shapes' validation split.
//!
//! Faster R-CNN ([`run_faster_rcnn`], `detect demo arch=fasterrcnn`): MobileNetV2 with its
//! ImageNet weights as the backbone, frozen, under an FPN, the FPN and the detector's heads
//! trained on the shapes; against the same model trained from random weights for the same
//! epochs. SSDlite ([`run_ssdlite`], `detect demo arch=ssdlite`): SSDlite320 on the same
//! ImageNet MobileNetV2, fine-tuned, against random weights.

use std::path::Path;

use anyhow::Result;
use ferrovis_core::engine::{RunControl, RunDir};
use ferrovis_data::synthetic::{write_detection, ShapesConfig};

use crate::config::DetectConfig;
use crate::references;
use crate::train::{train, TrainSummary};

/// torchvision's ImageNet MobileNetV2 checkpoint, looked up in `$FERROVIS_WEIGHTS`.
const MOBILENET_V2: &str = "mobilenet_v2-b0353104.pth";

/// The demo's three results.
#[derive(Debug, Clone)]
pub struct DemoResult {
    /// The pretraining run on the first shapes.
    pub pretrain: TrainSummary,
    /// Fine-tuned from it (`freeze=10`) on the new shapes.
    pub finetune: TrainSummary,
    /// From scratch on the new shapes, same epochs.
    pub scratch: TrainSummary,
}

fn shapes(seed: u64, classes: &[&str], train: usize) -> ShapesConfig {
    ShapesConfig {
        seed,
        image_size: 128,
        train,
        val: 40,
        classes: classes.iter().map(|c| c.to_string()).collect(),
        max_objects: 4,
    }
}

fn settings(data: &Path, runs: &Path, name: &str, model: &str, epochs: usize) -> Vec<String> {
    vec![
        format!("data={}", data.display()),
        format!("project={}", runs.display()),
        format!("name={name}"),
        format!("model={model}"),
        format!("epochs={epochs}"),
        "imgsz=128".into(),
        "batch=16".into(),
        // Small data, few epochs: update every batch rather than every 64 images.
        "nbs=16".into(),
        "close_mosaic=3".into(),
        "warmup_epochs=1".into(),
        "cache=true".into(),
    ]
}

/// Pretraining epochs (the first shapes).
pub const PRETRAIN_EPOCHS: usize = 30;

/// Runs the demo under `dir`: pretraining for [`PRETRAIN_EPOCHS`], then `epochs` each for the
/// fine-tuning and the from-scratch run.
pub fn run(dir: &Path, epochs: usize) -> Result<DemoResult> {
    let base = write_detection(
        &dir.join("data").join("pretrain"),
        &shapes(1, &["circle", "square", "triangle"], 300),
    )?;
    let new = write_detection(
        &dir.join("data").join("new-shapes"),
        &shapes(2, &["star", "hexagon", "cross"], 200),
    )?;
    let runs = dir.join("runs");
    let _ = std::fs::remove_dir_all(&runs);
    let control = RunControl::default();
    let go = |args: Vec<String>| -> Result<TrainSummary> {
        let cfg = DetectConfig::load(None, &args)?;
        train(&cfg, &control, None)
    };
    println!("== 1. pretraining YOLOv8n on circles, squares, triangles ({PRETRAIN_EPOCHS} epochs)");
    let pretrain = go(settings(
        &base,
        &runs,
        "pretrain",
        "yolov8n",
        PRETRAIN_EPOCHS,
    ))?;
    let weights = RunDir::new(&pretrain.run).best();
    println!("== 2. fine-tuning on stars, hexagons, crosses with freeze=10 ({epochs} epochs)");
    let mut ft = settings(
        &new,
        &runs,
        "finetune",
        &weights.display().to_string(),
        epochs,
    );
    ft.push("freeze=10".into());
    // Pretrained weights need no warmup (Ultralytics' warmup lasts at least 100 iterations, most
    // of this short run).
    ft.push("warmup_epochs=0".into());
    let finetune = go(ft)?;
    println!("== 3. the same from scratch ({epochs} epochs)");
    let scratch = go(settings(&new, &runs, "scratch", "yolov8n", epochs))?;
    println!("\nnew shapes, validation split ({} images):", 40);
    println!("{:<28} {:>7} {:>10}", "", "mAP50", "mAP50-95");
    for (name, r) in [
        ("pretrained + fine-tuned", &finetune),
        ("from scratch", &scratch),
    ] {
        println!("{name:<28} {:>7.3} {:>10.3}", r.map50, r.map50_95);
    }
    println!(
        "(pretraining on the first shapes reached mAP50 {:.3})\nruns in {}",
        pretrain.map50,
        runs.display()
    );
    Ok(DemoResult {
        pretrain,
        finetune,
        scratch,
    })
}

/// A torchvision detector's demo: ImageNet backbone against random weights, same epochs.
#[derive(Debug, Clone)]
pub struct TvDemoResult {
    /// From the ImageNet MobileNetV2 backbone; `None` without the weights.
    pub pretrained: Option<TrainSummary>,
    /// The same detector from random weights.
    pub scratch: TrainSummary,
}

/// What one torchvision demo trains: the architecture and its settings, and how the ImageNet
/// backbone is used.
struct TvDemo {
    /// What the runs are called (`rcnn`, `ssdlite`).
    name: &'static str,
    /// `arch=` and the recipe's settings for these images.
    args: Vec<String>,
    /// Settings added to the pretrained run only.
    pretrained_args: Vec<String>,
    /// How the pretrained run is described.
    pretrained_label: &'static str,
}

/// Runs the Faster R-CNN demo under `dir` for `epochs` each: MobileNetV2 with its ImageNet
/// weights, frozen, under an FPN over its last two stages (torchvision's `mobilenet_backbone`
/// with `fpn=True`), the FPN and the detector's heads trained, against the same from random
/// weights. The ImageNet backbone is `weights`, else found or fetched as
/// [`ferrovis_core::cli::demo_weights`] does; without it, only the run from random weights, and
/// the reason is said. (The tutorial's single-map model, `fasterrcnn_mobilenet_v2`, learns these
/// shapes too slowly for a demo: mAP50 0.47 after 12 epochs here, 0.345 when torchvision trains
/// it; see `bench/tutorial_rcnn_torchvision.py`.)
pub fn run_faster_rcnn(dir: &Path, epochs: usize, weights: Option<&Path>) -> Result<TvDemoResult> {
    let demo = TvDemo {
        name: "rcnn",
        args: vec![
            "arch=fasterrcnn_mobilenet_v2_fpn".to_string(),
            // Upscaled 3×: both tapped maps have stride 32, and the shapes (20–60 pixels here)
            // must cover a few of their cells and match the anchors (32–512 pixels).
            "min_size=384".into(),
            "max_size=384".into(),
            "batch=4".into(),
            "lr0=0.01".into(),
            // The rate drops ×0.1 for the last quarter of the run.
            format!("lr_step={}", (epochs * 3 / 4).max(1)),
            // The tutorial's sampling sizes are meant for 800-pixel photographs; these 128-pixel
            // images hold at most four objects.
            "rpn_post_nms_top_n_train=300".into(),
            "rpn_post_nms_top_n_test=100".into(),
            "box_batch_size_per_image=64".into(),
        ],
        pretrained_args: vec!["trainable_backbone_layers=0".into()],
        pretrained_label: "Faster R-CNN, ImageNet MobileNetV2 + FPN, backbone frozen",
    };
    run_torchvision(dir, &demo, epochs, weights)
}

/// Runs the SSDlite demo under `dir` for `epochs` each: SSDlite320 on MobileNetV2 (the
/// MobileNetV2 paper's pairing) with the `ssdlite` augmentation, every layer fine-tuned from the
/// ImageNet backbone (torchvision's default for SSDlite), against the same from random weights.
pub fn run_ssdlite(dir: &Path, epochs: usize, weights: Option<&Path>) -> Result<TvDemoResult> {
    let demo = TvDemo {
        name: "ssdlite",
        args: vec![
            "arch=ssdlite320_mobilenet_v2".to_string(),
            // A short run: a higher rate than the recipe's, held constant.
            "lr0=0.03".into(),
            "lr_step=1000".into(),
            // Flips only: the references' IoU crop, made for photographs, cuts these shapes into
            // pieces still labelled whole (with it, 20 epochs reach mAP50 0.86 instead of 0.9+).
            "data_augmentation=hflip".into(),
        ],
        pretrained_args: vec![],
        pretrained_label: "SSDlite, ImageNet MobileNetV2 backbone fine-tuned",
    };
    run_torchvision(dir, &demo, epochs, weights)
}

fn run_torchvision(
    dir: &Path,
    demo: &TvDemo,
    epochs: usize,
    weights: Option<&Path>,
) -> Result<TvDemoResult> {
    let data = write_detection(
        &dir.join("data").join("tv-shapes"),
        &ShapesConfig {
            val: 24,
            ..shapes(3, &["star", "hexagon", "cross"], 48)
        },
    )?;
    let runs = dir.join("runs");
    let control = RunControl::default();
    let weights = weights.map(Path::to_path_buf).or_else(|| {
        ferrovis_core::cli::demo_weights(&[MOBILENET_V2], "mobilenet_v2:IMAGENET1K_V1")
    });
    let go = |name: &str, extra: &[String]| -> Result<TrainSummary> {
        let _ = std::fs::remove_dir_all(runs.join(name));
        let mut args = vec![
            format!("data={}", data.display()),
            format!("project={}", runs.display()),
            format!("name={name}"),
            format!("epochs={epochs}"),
        ];
        args.extend(demo.args.iter().cloned());
        args.extend(extra.iter().cloned());
        let cfg = DetectConfig::load(None, &args)?;
        references::train::train(&cfg, &control, None)
    };
    let pretrained = match &weights {
        Some(w) => {
            println!(
                "== 1. {} ({}), {epochs} epochs",
                demo.pretrained_label,
                w.display()
            );
            let mut extra = vec![format!("model={}", w.display())];
            extra.extend(demo.pretrained_args.iter().cloned());
            Some(go(&format!("{}-pretrained", demo.name), &extra)?)
        }
        None => {
            println!(
                "== 1. skipped: no ImageNet MobileNetV2 weights ({MOBILENET_V2}); set \
                 FERROVIS_WEIGHTS to the folder holding it, or pass --weights"
            );
            None
        }
    };
    println!("== 2. the same detector from random weights, every layer training, {epochs} epochs");
    let scratch = go(&format!("{}-scratch", demo.name), &["model=none".into()])?;
    println!("\nshapes, validation split (24 images):");
    println!("{:<36} {:>7} {:>10}", "", "mAP50", "mAP50-95");
    if let Some(r) = &pretrained {
        println!(
            "{:<36} {:>7.3} {:>10.3}",
            "ImageNet backbone", r.map50, r.map50_95
        );
    }
    println!(
        "{:<36} {:>7.3} {:>10.3}",
        "random initialisation", scratch.map50, scratch.map50_95
    );
    println!("runs in {}", runs.display());
    Ok(TvDemoResult {
        pretrained,
        scratch,
    })
}
