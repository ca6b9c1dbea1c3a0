//! `detect demo`: transfer learning on synthetic shapes, end to end on a CPU in minutes.
//!
//! 1. pretrain YOLOv8n from scratch on circles, squares and triangles;
//! 2. fine-tune that model on stars, hexagons and crosses with `freeze=10` (backbone frozen, a new
//!    class branch);
//! 3. train the same model from scratch on the new shapes for the same epochs;
//! 4. print mAP50 of both on the new shapes' validation split.

use std::path::Path;

use anyhow::Result;
use ferrovis_core::engine::{RunControl, RunDir};
use ferrovis_data::synthetic::{write_detection, ShapesConfig};

use crate::config::DetectConfig;
use crate::train::{train, TrainSummary};

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
