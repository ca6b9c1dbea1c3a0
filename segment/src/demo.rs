//! `segment demo`: a U-Net transferred from a source task to synthetic shapes masks, against
//! the same U-Net trained from scratch.
//!
//! The **source** is torchvision's ImageNet MobileNetV2 as the U-Net's encoder when its weights
//! are at hand (`--weights`, `$FERROVIS_WEIGHTS`, torch.hub's cache, or fetched by name).
//! Without them (a fresh, offline machine) the encoder is the ResNet18 the classify demo
//! pretrained on six synthetic shapes (`make demo` runs it first: a classifier's backbone as a
//! U-Net's encoder is the transfer smp users make from ImageNet); failing that, a U-Net this demo
//! pretrains on those shapes' masks, cached in the demo folder so a second run skips it.
//!
//! The **target** task is three shapes the source never saw (pentagon, diamond, arrow; one per
//! image) with few images. The transfer is done as smp users do it: first the encoder frozen (its BatchNorm
//! statistics too) while the decoder and the new segmentation head adapt, then everything
//! unfrozen with the encoder at a tenth of the rate. The same U-Net trains from random weights
//! for as many epochs. The rows go into the demo folder's summary
//! ([`ferrovis_app::demo_report`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use ferrovis_app::demo_report::{self, CachedSource, DemoRow, Picture};
use ferrovis_core::device::parse_device;
use ferrovis_core::engine::RunControl;
use ferrovis_core::run::RunDir;
use ferrovis_data::synthetic::{self, ShapesConfig, DEFAULT_SHAPES};

use crate::config::{Mode, SegmentConfig};
use crate::infer::InferOptions;
use crate::train::TrainSummary;
use crate::{predict, train};

/// torchvision's ImageNet MobileNetV2 when no --weights is given: in `$FERROVIS_WEIGHTS` or
/// torch.hub's cache, else fetched by its registry name unless offline
/// (`ferrovis_app::pretrained::demo_weights`).
const MOBILENET_V2: &str = "mobilenet_v2-b0353104.pth";

/// The target task's shapes: three of the classify demo's targets, none in the source task.
pub const TARGET_SHAPES: [&str; 3] = ["pentagon", "diamond", "arrow"];

/// How much the demo generates and trains.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Side of the generated and trained images.
    pub image_size: usize,
    /// Source training images.
    pub source_train: usize,
    /// Source validation images.
    pub source_val: usize,
    /// Source pretraining epochs.
    pub source_epochs: usize,
    /// Target training images.
    pub target_train: usize,
    /// Target validation images.
    pub target_val: usize,
    /// Epochs with the encoder frozen.
    pub frozen_epochs: usize,
    /// Epochs with everything training, after the frozen ones.
    pub unfrozen_epochs: usize,
}

impl Plan {
    /// What `segment demo` runs: a few minutes on two CPU cores without real weights.
    pub fn full() -> Self {
        Self {
            image_size: 64,
            source_train: 480,
            source_val: 24,
            source_epochs: 16,
            target_train: 40,
            target_val: 16,
            frozen_epochs: 10,
            unfrozen_epochs: 50,
        }
    }

    /// What the source model depends on, recorded beside it: a cached source model is reused
    /// while this is unchanged, whatever the target settings.
    fn source_stamp(&self) -> String {
        demo_report::source_settings(
            &format!("unet resnet18 on {}, turns", DEFAULT_SHAPES.join(",")),
            self.image_size,
            self.source_train,
            self.source_val,
            self.source_epochs,
        )
    }

    /// A few seconds' worth, for tests of the demo's plumbing (its numbers mean nothing).
    pub fn smoke() -> Self {
        Self {
            image_size: 32,
            source_train: 4,
            source_val: 2,
            source_epochs: 1,
            target_train: 4,
            target_val: 2,
            frozen_epochs: 1,
            unfrozen_epochs: 1,
        }
    }
}

/// Runs the demo with [`Plan::full`] (or `epochs` on the target, two fifths of them frozen)
/// under `root` (the demo folder), from `weights` or the ImageNet MobileNetV2 found as
/// [`ferrovis_app::pretrained::demo_weights`] finds it.
pub fn run(root: &Path, weights: Option<PathBuf>, epochs: Option<usize>) -> Result<()> {
    let weights = weights.or_else(|| {
        ferrovis_app::pretrained::demo_weights(&[MOBILENET_V2], "mobilenet_v2:IMAGENET1K_V1")
    });
    let mut plan = Plan::full();
    if let Some(e) = epochs {
        plan.frozen_epochs = (e * 2 / 5).max(1);
        plan.unfrozen_epochs = e.saturating_sub(plan.frozen_epochs).max(1);
    }
    run_with(root, weights.as_deref(), &plan)?;
    Ok(())
}

/// Where the source model comes from.
struct Source {
    encoder: &'static str,
    weights: PathBuf,
    description: String,
    /// Seconds spent pretraining it in this run (0 when given or cached).
    seconds: f64,
    note: String,
}

/// One shape per image, as large as the classify demo's: the size its encoder learnt them at.
fn shapes(seed: u64, classes: &[&str], plan: &Plan, train: usize, val: usize) -> ShapesConfig {
    ShapesConfig {
        seed,
        image_size: plan.image_size,
        train,
        val,
        classes: classes.iter().map(|c| c.to_string()).collect(),
        max_objects: 1,
    }
}

/// The demo's settings for data in `data`, runs under `project` named `name`.
fn config(data: &Path, project: &Path, name: &str, encoder: &str, plan: &Plan) -> SegmentConfig {
    let mut cfg = SegmentConfig::default();
    cfg.data.images = data.join("train/images").display().to_string();
    cfg.data.masks = data.join("train/masks").display().to_string();
    cfg.data.val_images = data.join("val/images").display().to_string();
    cfg.data.val_masks = data.join("val/masks").display().to_string();
    cfg.data.image_size = plan.image_size;
    cfg.data.scale = (0.75, 1.25);
    // Shapes have no "up": quarter turns and flips give each mask eight views of its class.
    cfg.data.rotate90 = true;
    cfg.data.batch_size = 8;
    cfg.data.cache = true;
    cfg.model.encoder = encoder.into();
    cfg.train.optimizer = "adamw".into();
    // From random weights, AdamW at 1e-3 or more barely learns these shapes in the demo's few
    // hundred steps (the classify demo's ResNet18 too, and PyTorch's); 5e-4 does.
    cfg.train.lr = 5e-4;
    cfg.train.weight_decay = 1e-4;
    cfg.train.loss = "ce+dice".into();
    cfg.train.mode = Mode::FineTune;
    cfg.train.encoder_lr_scale = 1.0;
    cfg.train.project = project.display().to_string();
    cfg.train.name = name.into();
    cfg
}

/// Runs the demo under `root` (this task writes `root/segment`), from `weights` (torchvision's
/// ImageNet MobileNetV2, as the encoder) when given, else from a U-Net pretrained here. Returns
/// the row recorded in the demo summary.
pub fn run_with(root: &Path, weights: Option<&Path>, plan: &Plan) -> Result<DemoRow> {
    let dir = root.join("segment");
    let target = dir.join("data").join("target");
    synthetic::write_once(
        &target,
        &shapes(1, &TARGET_SHAPES, plan, plan.target_train, plan.target_val),
        synthetic::write_segmentation,
    )?;
    println!(
        "target: masks of {} ({} + {} images) in {}",
        TARGET_SHAPES.join(", "),
        plan.target_train,
        plan.target_val,
        target.display()
    );
    let source = match weights {
        Some(w) => Source {
            encoder: "mobilenet_v2",
            weights: w.to_path_buf(),
            description: "ImageNet (torchvision's MobileNetV2 as the encoder)".into(),
            seconds: 0.0,
            note: format!("source weights {}", w.display()),
        },
        None => match classify_source(root) {
            Some(s) => s,
            None => pretrain(&dir, plan)?,
        },
    };
    let runs = dir.join("runs");
    let control = RunControl::default();
    let go = |cfg: SegmentConfig| -> Result<TrainSummary> {
        let _ = std::fs::remove_dir_all(runs.join(&cfg.train.name));
        println!("\n== {} ({} epochs)", cfg.train.name, cfg.train.epochs);
        let s = train::train(&cfg, &control, None)?;
        println!(
            "best validation mIoU {:.4} at epoch {} ({:.0} s)",
            s.best_miou.0, s.best_miou.1, s.seconds
        );
        Ok(s)
    };

    let mut frozen = config(&target, &runs, "frozen-encoder", source.encoder, plan);
    frozen.model.weights = source.weights.display().to_string();
    frozen.train.mode = Mode::FeatureExtract;
    frozen.train.lr = 1e-3;
    frozen.train.epochs = plan.frozen_epochs;
    let frozen = go(frozen)?;

    let mut unfrozen = config(&target, &runs, "unfrozen", source.encoder, plan);
    unfrozen.model.weights = RunDir::new(&frozen.run).best().display().to_string();
    unfrozen.train.encoder_lr_scale = 0.1;
    unfrozen.train.lr = 3e-4;
    unfrozen.train.epochs = plan.unfrozen_epochs;
    let unfrozen = go(unfrozen)?;

    let mut scratch = config(&target, &runs, "scratch", source.encoder, plan);
    scratch.train.epochs = plan.frozen_epochs + plan.unfrozen_epochs;
    let scratch = go(scratch)?;

    let transferred = if unfrozen.best_miou.0 >= frozen.best_miou.0 {
        &unfrozen
    } else {
        &frozen
    };
    if let Some(e) = &transferred.last {
        println!("\ntransferred, last epoch:\n{}", e.table());
    }
    let device = parse_device("auto")?;
    let mut pictures = Vec::new();
    for (run, what) in [(transferred, "transferred"), (&scratch, "from scratch")] {
        let loaded = predict::load_model(&run.run, None, None, device)?;
        let out = run.run.join("predict");
        let opts = InferOptions {
            mode: loaded.meta.infer,
            size: loaded.meta.infer_size,
            flip: false,
            channels_last: false,
        };
        let images: Vec<PathBuf> = (0..plan.target_val.min(3))
            .map(|i| target.join(format!("val/images/{i:04}.png")))
            .collect();
        predict::predict(&loaded, &images, &out, &opts, device)?;
        for i in 0..images.len() {
            pictures.push(Picture::new(
                root,
                &out.join(format!("{i:04}_overlay.jpg")),
                format!("{what}: validation image {i}"),
            )?);
        }
    }
    let row = DemoRow {
        task: "segment".into(),
        model: format!(
            "U-Net {}, frozen then unfrozen encoder",
            if source.encoder == "resnet18" {
                "ResNet18"
            } else {
                "MobileNetV2"
            }
        ),
        source: source.description.clone(),
        target: format!("3 new shapes' masks, {} images", plan.target_train),
        metric: "mIoU".into(),
        transferred: Some(transferred.best_miou.0),
        scratch: Some(scratch.best_miou.0),
        seconds: source.seconds + frozen.seconds + unfrozen.seconds + scratch.seconds,
        note: source.note,
        pictures,
    };
    let all = demo_report::record(root, "segment", vec![row.clone()])?;
    println!("\n{}", demo_report::table(&all));
    println!("report: {}", demo_report::report_path(root).display());
    println!("\nother models (`segment train --arch <arch> --encoder <backbone>`):");
    for line in model_list() {
        println!("  {line}");
    }
    Ok(row)
}

/// The architectures `segment train` builds beyond the demo's U-Net, a line each, printed after
/// the demo's table so that its reader knows where to go next.
pub fn model_list() -> [&'static str; 5] {
    [
        "unet: smp's U-Net on any hierarchical core backbone (ResNet, ConvNeXt, Swin, RegNet, …)",
        "deeplabv3: torchvision's deeplabv3_resnet50 / _resnet101 / _mobilenet_v3_large",
        "deeplabv3plus: DeepLabV3+ at output stride 16 on any hierarchical core backbone",
        "fcn: torchvision's fcn_resnet50 / fcn_resnet101 (auxiliary head)",
        "lraspp: torchvision's lraspp_mobilenet_v3_large",
    ]
}

/// The ResNet18 the classify demo pretrained on synthetic shapes (in the same demo folder), as
/// the encoder: the transfer a user makes from a classifier to a U-Net.
fn classify_source(root: &Path) -> Option<Source> {
    let weights = root
        .join("classify")
        .join("source-model")
        .join("resnet18")
        .join("weights")
        .join("best.safetensors");
    weights.is_file().then(|| {
        println!(
            "source: the ResNet18 the classify demo pretrained on synthetic shapes, as the U-Net's \
             encoder: {}",
            weights.display()
        );
        Source {
            encoder: "resnet18",
            weights,
            description: "the classify demo's ResNet18 (shape classification, pretrained here)"
                .into(),
            seconds: 0.0,
            note: "no ImageNet weights at hand: the encoder is the classify demo's source model"
                .into(),
        }
    })
}

/// The source model made here when the classify demo's is not there: a U-Net with a ResNet18 encoder trained from random weights on
/// the masks of the six [`DEFAULT_SHAPES`]. Reused when a previous demo trained it with the same
/// plan (`plan.json` beside it).
fn pretrain(dir: &Path, plan: &Plan) -> Result<Source> {
    let data = dir.join("data").join("source");
    let project = dir.join("source-model");
    let run = project.join("unet-resnet18");
    let cache = CachedSource::new(RunDir::new(&run).best(), project.join("plan.json"));
    let want = plan.source_stamp();
    let description = format!(
        "{} synthetic shapes' masks, {} images (pretrained here)",
        DEFAULT_SHAPES.len(),
        plan.source_train
    );
    if cache.reusable(&want) {
        println!(
            "source: the U-Net pretrained by an earlier demo: {}",
            cache.weights.display()
        );
        return Ok(Source {
            encoder: "resnet18",
            weights: cache.weights,
            description,
            seconds: 0.0,
            note: "no ImageNet weights at hand; source model cached from an earlier demo".into(),
        });
    }
    println!(
        "no pretrained weights found (pass --weights with torchvision's {MOBILENET_V2}, or set \
         FERROVIS_WEIGHTS): pretraining a U-Net (ResNet18 encoder) here on the masks of {} ({} \
         images, {} epochs)",
        DEFAULT_SHAPES.join(", "),
        plan.source_train,
        plan.source_epochs
    );
    let started = Instant::now();
    synthetic::write_once(
        &data,
        &shapes(0, DEFAULT_SHAPES, plan, plan.source_train, plan.source_val),
        synthetic::write_segmentation,
    )?;
    let _ = std::fs::remove_dir_all(&project);
    let mut cfg = config(&data, &project, "unet-resnet18", "resnet18", plan);
    cfg.train.epochs = plan.source_epochs;
    let summary = train::train(&cfg, &RunControl::default(), None)?;
    cache.mark(&want)?;
    println!(
        "source model: validation mIoU {:.3} on the source shapes ({:.0} s)",
        summary.best_miou.0, summary.seconds
    );
    Ok(Source {
        encoder: "resnet18",
        weights: cache.weights,
        description,
        seconds: started.elapsed().as_secs_f64(),
        note: "no ImageNet weights at hand: the source model was pretrained here".into(),
    })
}
