//! `detect demo`: transfer learning on synthetic shapes, end to end on a CPU in minutes.
//!
//! YOLO ([`run`], YOLOv8n, or YOLO11n with `detect demo model=yolo11n`):
//! 1. pretrain the model from scratch on circles, squares and triangles;
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

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use ferrovis_app::demo_report::{DemoRow, Picture};
use ferrovis_core::device::parse_device;
use ferrovis_core::engine::{RunControl, RunDir};
use ferrovis_data::synthetic::{write_detection, ShapesConfig};

use crate::config::DetectConfig;
use crate::run::TrainSummary;
use crate::yolo::postprocess::NmsConfig;
use crate::yolo::train::train;

/// torchvision's ImageNet MobileNetV2 checkpoint, looked up in `$FERROVIS_WEIGHTS`.
const MOBILENET_V2: &str = "mobilenet_v2-b0353104.pth";

/// The detectors `detect train` builds beyond the ones the demo runs, a line per family, printed
/// after the demo's table so that its reader knows where to go next.
pub fn model_list() -> Vec<String> {
    use crate::torchvision::{faster_rcnn, fcos, retinanet, ssd};
    vec![
        "YOLOv8, YOLO11, YOLO26 n/s/m/l/x: model=yolov8n.pt … yolo26x.pt (or .yaml from scratch)"
            .to_string(),
        format!(
            "Faster R-CNN: arch={} (or fasterrcnn_<any backbone>)",
            faster_rcnn::ARCHS.join(" | ")
        ),
        format!("RetinaNet: arch={}", retinanet::ARCHS.join(" | ")),
        format!("FCOS: arch={}", fcos::ARCHS.join(" | ")),
        format!("SSD: arch={}", ssd::ARCHS.join(" | ")),
    ]
}

/// The ImageNet MobileNetV2 the torchvision detectors' demos start from: `given`, else found in
/// `$FERROVIS_WEIGHTS` or torch.hub's cache, else fetched by name unless offline
/// ([`ferrovis_app::pretrained::demo_weights`]); `None` when none is at hand, and those demos are
/// skipped ([`skipped_row`]): from random weights alone they would show nothing.
pub fn imagenet_weights(given: Option<&Path>) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| {
        ferrovis_app::pretrained::demo_weights(&[MOBILENET_V2], "mobilenet_v2:IMAGENET1K_V1")
    })
}

/// The demo's three results.
#[derive(Debug, Clone)]
pub struct DemoResult {
    /// The pretraining run on the first shapes.
    pub pretrain: TrainSummary,
    /// Fine-tuned from it (`freeze=10`) on the new shapes.
    pub finetune: TrainSummary,
    /// From scratch on the new shapes, same epochs.
    pub scratch: TrainSummary,
    /// Its line in the demo summary.
    pub row: DemoRow,
}

/// Validation images whose detections the report shows.
const SHOWN: usize = 3;

/// The first [`SHOWN`] validation images of the data set whose YAML is `yaml`.
fn shown_images(yaml: &Path) -> Vec<PathBuf> {
    let images = yaml.with_file_name("images").join("val");
    (0..SHOWN)
        .map(|i| images.join(format!("{i:04}.png")))
        .collect()
}

/// The pictures of one run for the report (`root` the demo folder): its PR curve and the
/// detections `predict` drew on `images` into `<run>/predict`.
fn run_pictures(root: &Path, run: &Path, what: &str, images: &[PathBuf]) -> Result<Vec<Picture>> {
    let mut pictures = Vec::new();
    let pr = run.join("PR_curve.png");
    if pr.is_file() {
        pictures.push(Picture::new(
            root,
            &pr,
            format!("{what}: precision-recall"),
        )?);
    }
    let drawn = images.iter().filter_map(|i| i.file_name());
    for (i, name) in drawn.enumerate() {
        pictures.push(Picture::new(
            root,
            &run.join("predict").join(name),
            format!("{what}: detections on validation image {i}"),
        )?);
    }
    Ok(pictures)
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

/// Runs the demo of YOLO model `model` (`yolov8n`, `yolo11n`, …) under `root/detect` (`root` is
/// the demo folder the report goes to): pretraining for [`PRETRAIN_EPOCHS`], then `epochs` each
/// for the fine-tuning and the from-scratch run.
pub fn run(root: &Path, epochs: usize, model: &str) -> Result<DemoResult> {
    let (version, scale) = crate::yolo::model::Version::parse_model_name(model)
        .ok_or_else(|| anyhow::anyhow!("demo: model={model}: expected yolov8n … yolo11x"))?;
    let title = format!("{version}{}", scale.name);
    let started = Instant::now();
    let dir = &root.join("detect");
    let base = write_detection(
        &dir.join("data").join("pretrain"),
        &shapes(1, &["circle", "square", "triangle"], 300),
    )?;
    let new = write_detection(
        &dir.join("data").join("new-shapes"),
        &shapes(2, &["star", "hexagon", "cross"], 200),
    )?;
    // YOLOv8n's runs keep their old place; another model's go beside them.
    let runs = if model == "yolov8n" {
        dir.join("runs")
    } else {
        dir.join(format!("runs-{model}"))
    };
    let _ = std::fs::remove_dir_all(&runs);
    let control = RunControl::default();
    let go = |args: Vec<String>| -> Result<TrainSummary> {
        let cfg = DetectConfig::load(None, &args)?;
        train(&cfg, &control, None)
    };
    println!("== 1. pretraining {title} on circles, squares, triangles ({PRETRAIN_EPOCHS} epochs)");
    let pretrain = go(settings(&base, &runs, "pretrain", model, PRETRAIN_EPOCHS))?;
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
    let scratch = go(settings(&new, &runs, "scratch", model, epochs))?;
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
    let device = parse_device("auto")?;
    let images = shown_images(&new);
    let mut pictures = Vec::new();
    for (r, what) in [(&finetune, "fine-tuned"), (&scratch, "from scratch")] {
        let m = crate::yolo::predict::load_model(&RunDir::new(&r.run).best(), device, true)?;
        crate::yolo::predict::predict(
            &m,
            &images,
            128,
            &NmsConfig::predict(),
            &r.run.join("predict"),
            &Default::default(),
            None,
        )?;
        pictures.extend(run_pictures(root, &r.run, what, &images)?);
    }
    let row = DemoRow {
        task: "detect".into(),
        model: format!("{title}, freeze=10"),
        source: "circles, squares, triangles (300 images, pretrained here)".into(),
        target: "stars, hexagons, crosses (200 images)".into(),
        metric: "mAP50".into(),
        transferred: Some(finetune.map50),
        scratch: Some(scratch.map50),
        seconds: started.elapsed().as_secs_f64(),
        note: String::new(),
        pictures,
    };
    Ok(DemoResult {
        pretrain,
        finetune,
        scratch,
        row,
    })
}

/// A torchvision detector's demo: ImageNet backbone against random weights, same epochs.
#[derive(Debug, Clone)]
pub struct TvDemoResult {
    /// From the ImageNet MobileNetV2 backbone.
    pub pretrained: TrainSummary,
    /// The same detector from random weights.
    pub scratch: TrainSummary,
    /// Its line in the demo summary.
    pub row: DemoRow,
}

/// Without the ImageNet weights a torchvision detector's demo is skipped: the row that says so.
pub fn skipped_row(model: &str) -> DemoRow {
    DemoRow {
        task: "detect".into(),
        model: model.into(),
        source: "ImageNet (torchvision's MobileNetV2)".into(),
        target: "stars, hexagons, crosses (48 images)".into(),
        metric: "mAP50".into(),
        transferred: None,
        scratch: None,
        seconds: 0.0,
        note: format!(
            "skipped: no ImageNet MobileNetV2 weights ({MOBILENET_V2}) in $FERROVIS_WEIGHTS, \
             torch.hub's cache or the registry's download"
        ),
        pictures: vec![],
    }
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
    /// Its name in the demo summary.
    model: &'static str,
}

/// The Faster R-CNN demo's name in the summary.
pub const FASTER_RCNN_MODEL: &str = "Faster R-CNN MobileNetV2-FPN, backbone frozen";
/// The SSDlite demo's name in the summary.
pub const SSDLITE_MODEL: &str = "SSDlite320 MobileNetV2, fine-tuned";

/// Runs the Faster R-CNN demo under `root/detect` for `epochs` each: MobileNetV2 with its ImageNet
/// weights, frozen, under an FPN over its last two stages (torchvision's `mobilenet_backbone`
/// with `fpn=True`), the FPN and the detector's heads trained, against the same from random
/// weights. `weights` is torchvision's ImageNet MobileNetV2 ([`imagenet_weights`]). (The
/// tutorial's single-map model, `fasterrcnn_mobilenet_v2`, learns these
/// shapes too slowly for a demo: mAP50 0.47 after 12 epochs here, 0.345 when torchvision trains
/// it; see `bench/tutorial_rcnn_torchvision.py`.)
pub fn run_faster_rcnn(root: &Path, epochs: usize, weights: &Path) -> Result<TvDemoResult> {
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
        model: FASTER_RCNN_MODEL,
    };
    run_torchvision(root, &demo, epochs, weights)
}

/// Runs the SSDlite demo under `dir` for `epochs` each: SSDlite320 on MobileNetV2 (the
/// MobileNetV2 paper's pairing) with the `ssdlite` augmentation, every layer fine-tuned from the
/// ImageNet backbone (torchvision's default for SSDlite), against the same from random weights.
pub fn run_ssdlite(root: &Path, epochs: usize, weights: &Path) -> Result<TvDemoResult> {
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
        model: SSDLITE_MODEL,
    };
    run_torchvision(root, &demo, epochs, weights)
}

fn run_torchvision(
    root: &Path,
    demo: &TvDemo,
    epochs: usize,
    weights: &Path,
) -> Result<TvDemoResult> {
    let started = Instant::now();
    let dir = root.join("detect");
    let data = write_detection(
        &dir.join("data").join("tv-shapes"),
        &ShapesConfig {
            val: 24,
            ..shapes(3, &["star", "hexagon", "cross"], 48)
        },
    )?;
    let runs = dir.join("runs");
    let control = RunControl::default();
    let go = |name: &str, extra: &[String]| -> Result<(TrainSummary, DetectConfig)> {
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
        Ok((crate::torchvision::train::train(&cfg, &control, None)?, cfg))
    };
    println!(
        "== 1. {} ({}), {epochs} epochs",
        demo.pretrained_label,
        weights.display()
    );
    let mut extra = vec![format!("model={}", weights.display())];
    extra.extend(demo.pretrained_args.iter().cloned());
    let pretrained = go(&format!("{}-pretrained", demo.name), &extra)?;
    println!("== 2. the same detector from random weights, every layer training, {epochs} epochs");
    let scratch = go(&format!("{}-scratch", demo.name), &["model=none".into()])?;
    println!("\nshapes, validation split (24 images):");
    println!("{:<36} {:>7} {:>10}", "", "mAP50", "mAP50-95");
    for (label, (r, _)) in [
        ("ImageNet backbone", &pretrained),
        ("random initialisation", &scratch),
    ] {
        println!("{label:<36} {:>7.3} {:>10.3}", r.map50, r.map50_95);
    }
    println!("runs in {}", runs.display());
    let images = shown_images(&data);
    let mut pictures = Vec::new();
    for ((r, cfg), what) in [
        (&pretrained, "ImageNet backbone"),
        (&scratch, "from scratch"),
    ] {
        let best = RunDir::new(&r.run).best();
        crate::torchvision::train::predict(
            &crate::source::identify(&best, None)?,
            cfg,
            &images,
            &r.run.join("predict"),
            &Default::default(),
            None,
        )?;
        pictures.extend(run_pictures(root, &r.run, what, &images)?);
    }
    let row = DemoRow {
        task: "detect".into(),
        model: demo.model.into(),
        source: "ImageNet (torchvision's MobileNetV2)".into(),
        target: "stars, hexagons, crosses (48 images)".into(),
        metric: "mAP50".into(),
        transferred: Some(pretrained.0.map50),
        scratch: Some(scratch.0.map50),
        seconds: started.elapsed().as_secs_f64(),
        note: format!("source weights {}", weights.display()),
        pictures,
    };
    Ok(TvDemoResult {
        pretrained: pretrained.0,
        scratch: scratch.0,
        row,
    })
}
