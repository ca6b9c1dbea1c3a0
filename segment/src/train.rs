//! `segment train`: the TrainTask the core engine runs. Training batches are random-scale crops
//! from the data crate; validation runs [`crate::val::evaluate`] at each image's own size, so the
//! epoch's mIoU is the number `segment val` reports.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ferrovis_core::engine::{RunControl, Session, SessionConfig, TrainConfig, TrainTask};
use ferrovis_core::memory_format;
use ferrovis_core::optim::{param_groups, Decay, GroupConfig, Optimizer, OptimizerKind, Schedule};
use ferrovis_data::dataset::{SegmentResize, SegmentationBatch, SegmentationDataset};
use ferrovis_data::loader::{EpochBatches, Loader, LoaderOptions, Sampler, Shard};
use ferrovis_data::transform::segment::SegmentAugment;
use tch::{Device, Tensor};

use crate::config::{Mode, SegmentConfig};
use crate::data::splits;
use crate::infer::InferOptions;
use crate::loss::SegmentationLoss;
use crate::model::{ModelSpec, SegmentationModel};
use crate::run::RunMeta;
use crate::val::{self, Evaluation};

/// The segmentation task the engine trains.
pub struct SegmentTask<'a> {
    model: &'a SegmentationModel,
    train: Loader<SegmentationDataset>,
    val: Loader<SegmentationDataset>,
    names: Vec<String>,
    device: Device,
    loss: SegmentationLoss,
    aux_weight: f64,
    infer: InferOptions,
    batches: Option<EpochBatches<SegmentationBatch>>,
    /// The last validation, for the caller.
    pub last_evaluation: Option<Evaluation>,
}

impl SegmentTask<'_> {
    /// The loss of one batch: main output, plus `aux_weight` × the auxiliary output's.
    pub fn batch_loss(&self, x: &Tensor, target: &Tensor) -> Tensor {
        let x = if self.infer.channels_last {
            memory_format::channels_last(x).unwrap_or_else(|_| x.shallow_clone())
        } else {
            x.shallow_clone()
        };
        let out = self.model.forward_t(&x, true);
        let main = self.loss.compute(&out.out, target);
        match out.aux {
            Some(aux) if self.aux_weight > 0.0 => {
                main + self.loss.compute(&aux, target) * self.aux_weight
            }
            _ => main,
        }
    }
}

impl TrainTask for SegmentTask<'_> {
    fn steps_per_epoch(&self) -> usize {
        self.train.num_batches()
    }

    fn on_epoch_start(&mut self, epoch: usize) -> Result<(), ferrovis_core::Error> {
        self.batches = Some(self.train.epoch(epoch));
        Ok(())
    }

    fn train_step(&mut self, _epoch: usize, _step: usize) -> Result<Tensor, ferrovis_core::Error> {
        let batch = ferrovis_core::engine::next_batch(self.batches.as_mut())?;
        let x = batch.images.to_device(self.device);
        let y = batch.masks.to_device(self.device);
        Ok(self.batch_loss(&x, &y))
    }

    fn validate(&mut self, _epoch: usize) -> Result<Vec<(String, f64)>, ferrovis_core::Error> {
        self.batches = None;
        let e = val::evaluate(self.model, &self.val, &self.names, &self.infer, self.device)
            .map_err(ferrovis_core::Error::task)?;
        let metrics = vec![
            ("val_loss".to_string(), e.loss),
            ("miou".to_string(), e.report.mean_iou),
            ("pixel_accuracy".to_string(), e.report.pixel_accuracy),
            ("mean_dice".to_string(), e.report.mean_dice),
        ];
        self.last_evaluation = Some(e);
        Ok(metrics)
    }
}

/// What a finished `train` reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run folder.
    pub run: PathBuf,
    /// Best validation mIoU and its epoch (1-based).
    pub best_miou: (f64, usize),
    /// The last epoch's validation.
    pub last: Option<Evaluation>,
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// Trains a segmentation model as `cfg` says, in a new run folder, or continues the run in
/// `resume` from its last checkpoint (to the same weights as an uninterrupted run).
pub fn train(
    cfg: &SegmentConfig,
    control: &RunControl,
    resume: Option<&Path>,
) -> Result<TrainSummary> {
    let name = if cfg.train.name.is_empty() {
        run_name(cfg.model.arch, &cfg.model.encoder)
    } else {
        cfg.train.name.clone()
    };
    let session = Session::start(
        &SessionConfig {
            device: ferrovis_core::parse_device(&cfg.train.device)?,
            seed: cfg.train.seed,
            project: Path::new(&cfg.train.project),
            name: &name,
            resume,
            config_toml: ferrovis_core::config::to_toml(cfg)?,
        },
        control,
    )?;
    let device = session.device();
    let shard = |pad: bool| {
        session
            .shard()
            .map(|(rank, world)| Shard::new(rank, world, pad))
    };
    let loss: SegmentationLoss = cfg
        .train
        .loss
        .parse()
        .map_err(|e: String| anyhow::anyhow!("train.loss: {e}"))?;
    // SGD trains with the poly schedule (DeepLab's recipe), Adam and AdamW with cosine decay.
    let kind = OptimizerKind::from_name(&cfg.train.optimizer, cfg.train.momentum)
        .context("train.optimizer")?;
    let splits = splits(&cfg.data)?;
    println!(
        "data: {} classes ({}), {} training pairs, {} validation ({}), masks read as {:?}",
        splits.names.len(),
        preview(&splits.names),
        splits.train.items.len(),
        splits.val.items.len(),
        splits.val_source,
        splits.train.encoding
    );
    // A DINOv2 encoder with no weights named takes its pre-trained features from the Hub (the
    // linear probe's point); a Hub checkpoint says how its encoder is built.
    let (weights, hub_ckpt) =
        ferrovis_core::hub::checkpoint::weights_for(&cfg.model.encoder, &cfg.model.weights)?;
    if let Some(t) = &hub_ckpt {
        if t.arch != cfg.model.encoder {
            anyhow::bail!(
                "model.weights = {weights:?} is a {} ({}), model.encoder is {:?}: set the \
                 encoder to {:?}",
                t.arch,
                t.config.architecture,
                cfg.model.encoder,
                t.arch
            );
        }
        if t.build.tf_same_padding || t.build.norm.is_some() {
            anyhow::bail!(
                "model.weights = {weights:?} ({}) needs its source's padding or BatchNorm \
                 settings, which segment's encoders are not built with: use torchvision's \
                 {} weights, or the checkpoint in classify",
                t.config.architecture,
                t.arch
            );
        }
    }
    let spec = ModelSpec {
        arch: cfg.model.arch,
        encoder: cfg.model.encoder.clone(),
        num_classes: splits.names.len() as i64,
        aux: cfg.model.aux,
        output_stride: cfg.model.output_stride,
        build: hub_ckpt.as_ref().map(|t| t.build).unwrap_or_default(),
    };
    let mut model = SegmentationModel::new(&spec, device)?;
    if let Some(t) = hub_ckpt {
        let source = format!("{weights} ({})", t.config.architecture);
        println!("weights: {}", model.load_state_dict(t.state_dict, &source)?);
    } else if weights.is_empty() {
        println!(
            "weights: none given, the {} encoder starts from random initialisation (set \
             model.weights to its ImageNet checkpoint, e.g. torchvision's .pth, to transfer)",
            spec.encoder
        );
    } else {
        println!("weights: {}", model.load_weights(Path::new(&weights))?);
    }
    let groups_cfg = GroupConfig {
        weight_decay: cfg.train.weight_decay,
        backbone_lr_scale: match cfg.train.mode {
            Mode::FeatureExtract => 1.0,
            Mode::FineTune => cfg.train.encoder_lr_scale,
        },
        ..Default::default()
    };
    if cfg.train.mode == Mode::FeatureExtract {
        model.freeze_encoder()?;
    }
    let (trainable, total) = model.parameter_counts();
    println!(
        "model: {:?} on {}, {:?}: {trainable} of {total} parameters train; loss {loss}",
        spec.arch, spec.encoder, cfg.train.mode
    );
    let pre = model.pretrained_cfg();
    let meta = RunMeta {
        model: spec.clone(),
        names: splits.names.clone(),
        mean: pre.mean,
        std: pre.std,
        infer: cfg.data.infer,
        infer_size: cfg.data.infer_size,
    };
    session.write_meta(&meta)?;

    let augment = SegmentAugment {
        size: cfg.data.image_size,
        scale: cfg.data.scale,
        hflip: cfg.data.hflip,
        rotate90: cfg.data.rotate90,
    };
    let mut train_ds = SegmentationDataset::new(
        splits.train.clone(),
        SegmentResize::Augment(augment),
        pre.mean,
        pre.std,
    );
    if cfg.data.cache {
        train_ds = train_ds.with_cache();
    }
    let batch_size = cfg.data.batch_size.max(1);
    // BatchNorm needs more than one value per channel (ASPP's pooled branch has one per
    // image): a last batch of one would fail, so incomplete batches are dropped when a full
    // one exists.
    let drop_last = splits.train.items.len() >= batch_size && batch_size > 1;
    let train_loader = Loader::new(
        train_ds,
        LoaderOptions {
            batch_size,
            sampler: Sampler::Shuffle,
            drop_last,
            seed: cfg.train.seed,
            prefetch: 2,
            workers: cfg.data.workers,
        },
    )?
    .with_shard(shard(true));
    // Each rank scores its share; `val::evaluate` sums the confusion matrices.
    let val_loader = val::loader(
        &splits.val,
        pre.mean,
        pre.std,
        cfg.data.cache,
        cfg.data.workers,
    )?
    .with_shard(shard(false));
    let channels_last = cfg.train.channels_last;
    if channels_last {
        model.to_channels_last()?;
    }
    let mut task = SegmentTask {
        model: &model,
        train: train_loader,
        val: val_loader,
        names: splits.names.clone(),
        device,
        loss,
        aux_weight: cfg.train.aux_weight,
        infer: InferOptions {
            mode: cfg.data.infer,
            size: cfg.data.infer_size,
            flip: false,
            channels_last,
        },
        batches: None,
        last_evaluation: None,
    };
    let groups = param_groups(&model.vs, &model.stages(), &groups_cfg);
    let mut opt = Optimizer::new(kind, groups, cfg.train.lr);
    let steps = task.steps_per_epoch() as f64;
    let decay = match cfg.train.optimizer.as_str() {
        "sgd" => Decay::Poly {
            power: cfg.train.poly_power,
        },
        _ => Decay::Cosine {
            min_factor: cfg.train.final_lr_factor,
        },
    };
    let train_cfg = TrainConfig {
        epochs: cfg.train.epochs,
        lr: cfg.train.lr,
        schedule: Schedule {
            decay,
            warmup_iters: (cfg.train.warmup_epochs * steps) as u64,
            warmup_start: 0.1,
        },
        accumulate: 1,
        accumulate_mean: true,
        grad_clip: None,
        ema: None,
        monitor: "miou".into(),
        maximize: true,
        patience: None,
        seed: cfg.train.seed,
        amp: cfg.train.amp && device.is_cuda(),
        tensorboard: cfg.train.tensorboard,
    };
    let outcome = session.fit(&model.vs, &mut task, &mut opt, &train_cfg)?;
    let last = task.last_evaluation.take();
    drop(task);
    Ok(TrainSummary {
        run: session.path(),
        best_miou: outcome.best.unwrap_or((0.0, 0)),
        last,
        seconds: session.seconds(),
    })
}

/// The default run-folder name: `unet-resnet34`.
pub fn arch_name(spec: &ModelSpec) -> String {
    run_name(spec.arch, &spec.encoder)
}

/// The default run-folder name of `arch` on `encoder`.
fn run_name(arch: crate::model::Architecture, encoder: &str) -> String {
    let arch = serde_json::to_value(arch)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    format!("{arch}-{encoder}")
}

fn preview(names: &[String]) -> String {
    if names.len() <= 8 {
        names.join(", ")
    } else {
        format!("{}, … {}", names[..6].join(", "), names[names.len() - 1])
    }
}
