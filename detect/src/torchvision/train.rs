//! Training, validation and prediction of torchvision's detectors with torchvision's recipe:
//! SGD on every trainable parameter (weight decay included), a linear warm-up from lr/1000 over
//! the first epoch (at most 1,000 steps), the rate multiplied by `lr_gamma` every `lr_step`
//! epochs, the four losses summed. Every epoch validates; the metrics are COCO's mAP
//! (pycocotools' definition, from core's metrics) and Ultralytics' precision and recall, under
//! YOLOv8's `results.csv` names, so the best weights are chosen by the same fitness.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ferrovis_core::device::parse_device;
use ferrovis_core::engine::{RunControl, TrainConfig, TrainTask};
use ferrovis_core::freeze;
use ferrovis_core::metrics::detection::{
    coco_evaluate, CocoReport, CocoTruth, Detection, GroundTruth,
};
use ferrovis_core::metrics::{DetectionAccumulator, DetectionReport};
use ferrovis_core::optim::{Decay, Optimizer, OptimizerKind, ParamGroup, Schedule};
use ferrovis_data::dataset::DetectionData;
use ferrovis_data::decode::image_size;
use ferrovis_data::loader::{aspect_ratio_groups, EpochBatches, Loader, Sampler, Shard};
use serde::Serialize;

use super::data::{Batch, NativeSizeDataset};
use super::model::Model;
use crate::config::DetectConfig;
use crate::data::{check_dataset, loader_options};
use crate::output::{self, write_predictions, ImagePrediction, PixelDetection};
use crate::run::TrainSummary;
use crate::source::WeightsSource;
use crate::track::TrackerConfig;
use ferrovis_data::video::VideoOptions;

/// What one validation pass measured.
#[derive(Debug, Clone, Serialize)]
pub struct ValOutput {
    /// pycocotools' twelve numbers.
    pub coco: CocoReport,
    /// Ultralytics' precision, recall and mAP (for the same columns as YOLOv8).
    pub report: DetectionReport,
    /// Milliseconds per image (the whole model, transform included).
    pub ms_per_image: f64,
}

impl ValOutput {
    /// YOLOv8's fitness on COCO's numbers: 0.1·AP50 + 0.9·AP.
    pub fn fitness(&self) -> f64 {
        0.1 * self.coco.ap50 + 0.9 * self.coco.ap
    }

    /// The `results.csv` columns, named as YOLOv8's.
    pub fn columns(&self) -> Vec<(String, f64)> {
        vec![
            ("metrics/precision(B)".into(), self.report.precision),
            ("metrics/recall(B)".into(), self.report.recall),
            ("metrics/mAP50(B)".into(), self.coco.ap50),
            ("metrics/mAP50-95(B)".into(), self.coco.ap),
            ("metrics/AR100(B)".into(), self.coco.ar100),
            ("fitness".into(), self.fitness()),
        ]
    }
}

/// Every image of `loader` through the model (evaluation mode), scored against its boxes.
pub fn evaluate(model: &Model, loader: &Loader<NativeSizeDataset>) -> Result<ValOutput> {
    let nc = model.names.len();
    let mut acc = DetectionAccumulator::new(nc);
    let mut images: Vec<(Vec<Detection>, Vec<CocoTruth>)> = Vec::new();
    let mut seconds = 0.0;
    for batch in loader.epoch(0) {
        let batch = batch.context("loading a validation batch")?;
        let t = Instant::now();
        let dets = model.detect(&batch.images)?;
        seconds += t.elapsed().as_secs_f64();
        for (d, truths) in dets.into_iter().zip(&batch.truths) {
            acc.add_image(&d, truths)?;
            images.push((d, truths.iter().map(coco_truth).collect()));
        }
    }
    crate::output::warn_left_out(&loader.failures());
    Ok(ValOutput {
        coco: coco_evaluate(&images, nc),
        report: acc.report(),
        ms_per_image: 1000.0 * seconds / images.len().max(1) as f64,
    })
}

fn coco_truth(g: &GroundTruth) -> CocoTruth {
    let [x1, y1, x2, y2] = g.bbox;
    CocoTruth {
        bbox: g.bbox,
        class: g.class,
        area: ((x2 - x1) * (y2 - y1)) as f64,
        iscrowd: false,
    }
}

/// Prints the table and COCO's summary; writes `PR_curve.png` and `metrics.json` into `dir`.
pub fn report(out: &ValOutput, names: &[String], dir: &Path) -> Result<()> {
    output::print_table(&out.report, names);
    let c = &out.coco;
    println!(
        "COCO: AP {:.3}  AP50 {:.3}  AP75 {:.3}  AP small/medium/large {:.3}/{:.3}/{:.3}  AR100 {:.3}",
        c.ap, c.ap50, c.ap75, c.ap_small, c.ap_medium, c.ap_large, c.ar100
    );
    println!("speed: {:.1} ms per image", out.ms_per_image);
    let json = serde_json::json!({
        "coco": &out.coco,
        "metrics": &out.report,
        "fitness": out.fitness(),
        "names": names,
    });
    output::write_validation(&out.report, names, dir, &json)
}

/// A loader of `data`: in training augmented (`data_augmentation`), and batched by aspect-ratio
/// group as torchvision's references batch (`aspect_ratio_group_factor`).
pub fn loader(
    data: &DetectionData,
    cfg: &DetectConfig,
    train: bool,
    batch: usize,
) -> Result<Loader<NativeSizeDataset>> {
    let augment = if train {
        Some(cfg.tv_augmentation()?)
    } else {
        None
    };
    let ds = NativeSizeDataset::new(data.items.clone(), augment);
    let mut opts = loader_options(cfg, train, batch);
    if train && cfg.aspect_ratio_group_factor >= 0 {
        // Image headers only: the sizes, not the pixels.
        let ratios = data
            .items
            .iter()
            .map(|item| {
                let (w, h) = image_size(&item.path)?;
                Ok(w as f64 / h.max(1) as f64)
            })
            .collect::<Result<Vec<f64>>>()?;
        let groups = aspect_ratio_groups(&ratios, cfg.aspect_ratio_group_factor as usize);
        opts.sampler = Sampler::Grouped(groups);
    }
    Ok(Loader::new(ds, opts)?)
}

struct TrainingTask<'a> {
    model: &'a Model,
    train: Loader<NativeSizeDataset>,
    val: Loader<NativeSizeDataset>,
    batches: Option<EpochBatches<Batch>>,
    steps_per_epoch: usize,
    /// Each loss's sum over the epoch's steps, in [`Detector::loss_names`]' order.
    sums: Vec<f64>,
    steps: usize,
}

impl TrainTask for TrainingTask<'_> {
    fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    fn on_epoch_start(&mut self, epoch: usize) -> ferrovis_core::Result<()> {
        self.batches = Some(self.train.epoch(epoch));
        self.sums = vec![0.0; self.model.net.loss_names().len()];
        self.steps = 0;
        Ok(())
    }

    fn train_step(&mut self, _epoch: usize, _step: usize) -> ferrovis_core::Result<tch::Tensor> {
        let batch = ferrovis_core::engine::next_batch(self.batches.as_mut())?;
        let losses = self
            .model
            .losses(&batch.images, &batch.targets)
            .map_err(ferrovis_core::Error::task)?;
        for (s, v) in self.sums.iter_mut().zip(&losses) {
            *s += v.double_value(&[]);
        }
        self.steps += 1;
        let total = losses
            .into_iter()
            .reduce(|a, b| a + b)
            .ok_or_else(|| ferrovis_core::Error::task(anyhow::anyhow!("no losses")))?;
        Ok(total)
    }

    fn train_columns(&mut self) -> Vec<(String, f64)> {
        let n = self.steps.max(1) as f64;
        self.model
            .net
            .loss_names()
            .iter()
            .zip(&self.sums)
            .map(|(name, s)| (format!("train/{name}"), s / n))
            .collect()
    }

    fn validate(&mut self, _epoch: usize) -> ferrovis_core::Result<Vec<(String, f64)>> {
        self.batches = None;
        let out = evaluate(self.model, &self.val).map_err(ferrovis_core::Error::task)?;
        Ok(out.columns())
    }
}

/// Trains `cfg.arch` as `cfg` says in a new run folder (or continues `resume`).
pub fn train(
    cfg: &DetectConfig,
    control: &RunControl,
    resume: Option<&Path>,
) -> Result<TrainSummary> {
    let session = crate::run::start_session(cfg, control, resume)?;
    let (device, group) = (session.device(), session.group());
    let (yaml, train_data, val_data) = check_dataset(&cfg.data)?;
    let (model, line) = Model::for_training(cfg, &yaml.names, device)?;
    println!("model: {line}");
    session.write_meta(&model.meta(cfg))?;

    // `batch` is per rank, as in torchvision's references (`--batch-size` images per GPU); each
    // rank trains on its share of every epoch, grouped by aspect ratio within it. Validation
    // is not shared out: COCO evaluation needs every image's detections, so each rank scores
    // the whole split (the same weights, the same numbers).
    let shard = group.map(|g| Shard::new(g.rank(), g.world_size(), true));
    let train_loader = loader(&train_data, cfg, true, cfg.batch)?.with_shard(shard);
    let val_loader = loader(&val_data, cfg, false, cfg.batch)?;
    let batches = train_loader.num_batches();
    let kind = match cfg.optimizer.to_ascii_lowercase().as_str() {
        "sgd" | "auto" => OptimizerKind::Sgd {
            momentum: cfg.momentum,
            dampening: 0.0,
            nesterov: false,
        },
        "adamw" => OptimizerKind::AdamW {
            beta1: cfg.momentum,
            beta2: 0.999,
            eps: 1e-8,
        },
        other => bail!("optimizer={other}: expected SGD or AdamW for {}", cfg.arch),
    };
    let params = freeze::trainable_parameters(&model.vs);
    println!(
        "optimizer: {kind:?} lr0={} weight decay {} on {} trainable tensors; ×{} every {} epochs",
        cfg.lr0,
        cfg.weight_decay,
        params.len(),
        cfg.lr_gamma,
        cfg.lr_step
    );
    let mut opt = Optimizer::new(
        kind,
        vec![ParamGroup {
            name: "all".into(),
            params,
            lr_scale: 1.0,
            weight_decay: cfg.weight_decay,
        }],
        cfg.lr0,
    );
    // torchvision's references warm up during the first epoch only, over min(1000, steps − 1).
    let warmup = if cfg.warmup_epochs > 0.0 {
        (batches.saturating_sub(1)).min(1000) as u64
    } else {
        0
    };
    let train_cfg = TrainConfig {
        epochs: cfg.epochs,
        lr: cfg.lr0,
        schedule: Schedule {
            decay: Decay::Step {
                step: (cfg.lr_step.max(1) * batches) as u64,
                gamma: cfg.lr_gamma,
            },
            warmup_iters: warmup,
            warmup_start: 0.001,
        },
        accumulate: 1,
        accumulate_mean: true,
        grad_clip: None,
        ema: None,
        monitor: "fitness".into(),
        maximize: true,
        patience: Some(cfg.patience),
        seed: cfg.seed,
        amp: false,
        tensorboard: cfg.tensorboard,
    };
    let mut task = TrainingTask {
        model: &model,
        train: train_loader,
        val: val_loader,
        batches: None,
        steps_per_epoch: batches,
        sums: Vec::new(),
        steps: 0,
    };
    let outcome = session.fit(&model.vs, &mut task, &mut opt, &train_cfg)?;
    println!(
        "{} epochs completed ({:?})",
        outcome.epochs_completed, outcome.reason
    );
    let run = session.path();
    let best = session.load_best(&model.vs)?;
    let out = evaluate(&model, &task.val)?;
    if session.is_main() {
        println!("validating {}:", best.display());
        report(&out, &model.names, &run)?;
        println!("results in {}", run.display());
    }
    Ok(TrainSummary {
        run,
        map50: out.coco.ap50,
        map50_95: out.coco.ap,
    })
}

/// `detect val` for a torchvision detector: a run's weights, or a checkpoint with the data set's
/// classes, on its val split (or `cfg.data`'s).
pub fn val(source: &WeightsSource, cfg: &DetectConfig, out: Option<PathBuf>) -> Result<ValOutput> {
    let device = parse_device(&cfg.device_name())?;
    let (yaml, _, val_data) = check_dataset(&cfg.data)?;
    let names = source.meta.is_none().then_some(yaml.names.as_slice());
    let model = Model::from_source(source, cfg, names, device)?;
    if yaml.names.len() != model.names.len() {
        bail!(
            "{} detects {} classes but {} has {}",
            source.file.display(),
            model.names.len(),
            yaml.file.display(),
            yaml.names.len()
        );
    }
    let result = evaluate(&model, &loader(&val_data, cfg, false, cfg.batch)?)?;
    let dir =
        out.unwrap_or_else(|| ferrovis_core::engine::new_run_dir(Path::new(&cfg.project), "val"));
    report(&result, &model.names, &dir)?;
    Ok(result)
}

/// `detect predict` for a torchvision detector (a run's weights, or a checkpoint on its own: see
/// [`Model::from_source`]): the same outputs as YOLO's, detections scoring at least `conf` (0.25
/// unless given).
pub fn predict(
    source: &WeightsSource,
    cfg: &DetectConfig,
    sources: &[PathBuf],
    out: &Path,
    video: &VideoOptions,
    tracker: Option<&TrackerConfig>,
) -> Result<Vec<ImagePrediction>> {
    let device = parse_device(&cfg.device_name())?;
    let model = Model::from_source(source, cfg, None, device)?;
    let conf = cfg.conf.unwrap_or(0.25);
    write_predictions(sources, out, video, tracker, |file, image| {
        let x = ferrovis_data::tensor::to_normalized_chw(image, [0.0; 3], [1.0; 3]);
        let dets = model.detect(&[x])?.pop().unwrap_or_default();
        Ok(ImagePrediction {
            image: file.to_path_buf(),
            frame: None,
            size: (image.width, image.height),
            detections: dets
                .into_iter()
                .filter(|d| d.score >= conf)
                .take(cfg.max_det)
                .map(|d| PixelDetection {
                    track_id: None,
                    class: d.class,
                    name: model.names.get(d.class).cloned().unwrap_or_default(),
                    confidence: d.score,
                    xyxy: d.bbox,
                })
                .collect(),
        })
    })
}
