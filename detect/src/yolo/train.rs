//! `detect train`: YOLO (v8, 11, 26) fine-tuning with Ultralytics' recipe (as of 8.4) on the core
//! engine.
//!
//! - parameter groups as Ultralytics builds them: biases (no decay), convolution weights (decay
//!   `weight_decay · batch · accumulate / nbs`), BatchNorm weights (no decay), and under MuSGD
//!   the class branches' share of each at three times the rate; `optimizer=auto` picks
//!   MuSGD(lr 0.01, momentum 0.9) beyond 10 000 iterations and AdamW(lr `0.002·5/(4+nc)`, β₁ 0.9)
//!   otherwise, with no bias warmup;
//! - the learning rate follows `lr0 · lf(epoch)`, `lf` linear from 1 to `lrf`, stepped per epoch;
//!   for the first `round(min(warmup_epochs, epochs − 1) · batches)` iterations every group's
//!   rate rises linearly from 0 (biases fall from `warmup_bias_lr`) to that value, SGD's and
//!   MuSGD's momentum from `warmup_momentum` to `momentum` (Adam's β₁ stays), and accumulation
//!   from 1 to `nbs / batch`;
//! - gradients of the nominal batch `nbs` are summed (the loss is already scaled by the batch
//!   size), clipped to norm 10; EMA (0.9999, τ 2000) weights are validated and saved;
//! - YOLO26 trains both heads, the one-to-many weight falling per epoch ([`YoloLoss`]);
//! - every epoch validates; `best` is chosen by fitness 0.1·mAP50 + 0.9·mAP50-95.

use std::path::Path;

use anyhow::{bail, Result};
use ferrovis_core::distributed;
use ferrovis_core::engine::{RunControl, TrainConfig, TrainTask};
use ferrovis_core::freeze::{self, FreezeOptions};
use ferrovis_core::optim::{Decay, Optimizer, OptimizerKind, ParamGroup, Schedule};
use ferrovis_data::dataset::{DetectionBatch, DetectionData, DetectionDataset};
use ferrovis_data::loader::{EpochBatches, Loader, Shard};
use tch::nn::VarStore;
use tch::Device;

use crate::config::DetectConfig;
use crate::data::{check_dataset, loader_options};
use crate::run::{RunMeta, TrainSummary};
use crate::yolo::loss::{LossGains, YoloLoss};
use crate::yolo::model::Yolo;
use crate::yolo::postprocess::NmsConfig;
use crate::yolo::val::{evaluate, report};
use crate::yolo::weights;

/// The three Ultralytics parameter groups of the trainable variables: biases (no decay),
/// convolution weights (decay), BatchNorm weights (no decay). With `boost` (MuSGD), the
/// parameters whose names start with one of its prefixes (the class branches) form a second
/// group of each kind at three times the learning rate, as Ultralytics builds MuSGD's groups.
fn yolo_groups(vs: &VarStore, decay: f64, boost: &[String]) -> Vec<ParamGroup> {
    let vars = freeze::trainable_parameters(vs);
    let kinds = [("bias", 0.0), ("weights/decay", decay), ("bn", 0.0)];
    let mut groups: Vec<ParamGroup> = Vec::new();
    for boosted in [false, true] {
        if boosted && boost.is_empty() {
            continue;
        }
        for (name, weight_decay) in kinds {
            groups.push(ParamGroup {
                name: if boosted {
                    format!("{name}/boost")
                } else {
                    name.to_string()
                },
                params: Vec::new(),
                lr_scale: if boosted { 3.0 } else { 1.0 },
                weight_decay,
            });
        }
    }
    for (name, t) in vars {
        let kind = if name.ends_with(".bias") {
            0
        } else if name.contains(".bn.") {
            2
        } else {
            1
        };
        let boosted = boost.iter().any(|prefix| name.starts_with(prefix.as_str()));
        groups[kind + if boosted { 3 } else { 0 }]
            .params
            .push((name, t));
    }
    groups
}

/// Ultralytics' warmup and per-epoch linear decay, applied per step.
#[derive(Debug, Clone, Copy)]
struct Recipe {
    batches: usize,
    warmup_iters: usize,
    epochs: usize,
    lr0: f64,
    lrf: f64,
    momentum: f64,
    warm_momentum: bool,
    warmup_momentum: f64,
    warmup_bias_lr: f64,
    nominal: f64,
}

impl Recipe {
    fn lf(&self, epoch: usize) -> f64 {
        (1.0 - epoch as f64 / self.epochs as f64).max(0.0) * (1.0 - self.lrf) + self.lrf
    }

    fn accumulate(&self) -> usize {
        self.nominal.round_ties_even().max(1.0) as usize
    }

    /// Sets the groups' rates and momentum for step `step` of `epoch`; returns the accumulation.
    fn apply(&self, opt: &mut Optimizer, epoch: usize, step: usize) -> usize {
        let ni = step + self.batches * epoch;
        let target = self.lr0 * self.lf(epoch);
        if ni <= self.warmup_iters && self.warmup_iters > 0 {
            let f = ni as f64 / self.warmup_iters as f64;
            let lerp = |a: f64, b: f64| a + (b - a) * f;
            for g in 0..opt.groups().len() {
                let group = &opt.groups()[g];
                let start = if group.name.starts_with("bias") {
                    self.warmup_bias_lr
                } else {
                    0.0
                };
                let end = target * group.lr_scale;
                opt.set_group_lr(g, lerp(start, end));
            }
            if self.warm_momentum {
                opt.set_momentum(lerp(self.warmup_momentum, self.momentum));
            }
            lerp(1.0, self.nominal).round_ties_even().max(1.0) as usize
        } else {
            for g in 0..opt.groups().len() {
                let scale = opt.groups()[g].lr_scale;
                opt.set_group_lr(g, target * scale);
            }
            self.accumulate()
        }
    }
}

struct DetectTask<'a> {
    model: &'a Yolo,
    loss: YoloLoss,
    epochs: usize,
    train: Loader<DetectionDataset>,
    val: Loader<DetectionDataset>,
    batches: Option<EpochBatches<DetectionBatch>>,
    device: Device,
    recipe: Recipe,
    sums: [f64; 3],
    steps: usize,
    mosaic_off: usize,
    /// Ranks in a data-parallel run (1 alone): the loss is multiplied by it, as Ultralytics does
    /// under DDP, since its loss is a sum scaled by the batch and DDP averages the gradients.
    world: f64,
}

impl TrainTask for DetectTask<'_> {
    fn steps_per_epoch(&self) -> usize {
        self.recipe.batches
    }

    fn on_epoch_start(&mut self, epoch: usize) -> ferrovis_core::Result<()> {
        if epoch == self.mosaic_off && epoch > 0 {
            println!("closing mosaic for the last epochs (close_mosaic)");
        }
        self.batches = Some(self.train.epoch(epoch));
        self.loss.set_epoch(epoch, self.epochs);
        self.sums = [0.0; 3];
        self.steps = 0;
        Ok(())
    }

    fn before_step(
        &mut self,
        opt: &mut Optimizer,
        epoch: usize,
        step: usize,
    ) -> ferrovis_core::Result<Option<usize>> {
        Ok(Some(self.recipe.apply(opt, epoch, step)))
    }

    fn train_step(&mut self, _epoch: usize, _step: usize) -> ferrovis_core::Result<tch::Tensor> {
        let batch = ferrovis_core::engine::next_batch(self.batches.as_mut())?;
        let x = batch.images.to_device(self.device);
        let (raw, one2one) = self.model.forward_both(&x, true);
        let out = self.loss.compute(&raw, one2one.as_deref(), &batch.targets);
        for (s, p) in self.sums.iter_mut().zip(out.parts) {
            *s += p;
        }
        self.steps += 1;
        Ok(if self.world > 1.0 {
            out.total * self.world
        } else {
            out.total
        })
    }

    fn train_columns(&mut self) -> Vec<(String, f64)> {
        let n = self.steps.max(1) as f64;
        self.loss
            .part_names()
            .iter()
            .zip(self.sums)
            .map(|(name, s)| (format!("train/{name}"), s / n))
            .collect()
    }

    fn validate(&mut self, _epoch: usize) -> ferrovis_core::Result<Vec<(String, f64)>> {
        self.batches = None;
        let out = evaluate(
            self.model,
            &self.val,
            &NmsConfig::val(),
            self.device,
            Some(&self.loss),
        )
        .map_err(ferrovis_core::Error::task)?;
        let r = &out.report;
        let mut m = vec![
            ("metrics/precision(B)".to_string(), r.precision),
            ("metrics/recall(B)".to_string(), r.recall),
            ("metrics/mAP50(B)".to_string(), r.map50),
            ("metrics/mAP50-95(B)".to_string(), r.map50_95),
        ];
        if let Some(l) = out.losses {
            for (name, v) in self.loss.part_names().iter().zip(l) {
                m.push((format!("val/{name}"), v));
            }
        }
        m.push(("fitness".into(), out.fitness()));
        Ok(m)
    }
}

/// A loader over `data`: augmented square training batches, or Ultralytics' rectangular
/// validation batches (images grouped by aspect ratio, each batch letterboxed to its own shape).
pub fn loader(
    data: &DetectionData,
    cfg: &DetectConfig,
    augment: bool,
    batch: usize,
) -> Result<Loader<DetectionDataset>> {
    let aug = augment.then(|| cfg.augment());
    let mut ds = DetectionDataset::new(data.items.clone(), cfg.imgsz, aug);
    if !augment {
        ds = ds.with_rect_batches(batch, crate::yolo::head::STRIDES[2] as usize);
    }
    if cfg.cache {
        ds = ds.with_cache();
    }
    Ok(Loader::new(ds, loader_options(cfg, augment, batch))?)
}

/// Trains as `cfg` says in a new run folder (or continues `resume`).
pub fn train(
    cfg: &DetectConfig,
    control: &RunControl,
    resume: Option<&Path>,
) -> Result<TrainSummary> {
    let session = crate::run::start_session(cfg, control, resume)?;
    let (device, group) = (session.device(), session.group());
    let (yaml, train_data, val_data) = check_dataset(&cfg.data)?;
    let nc = yaml.names.len() as i64;
    let (vs, model, line) = weights::build(&cfg.model, nc, device)?;
    println!("model: {line}");
    if cfg.freeze > 0 {
        let detect_index = model.config().version.detect_index();
        let patterns: Vec<String> = (0..cfg.freeze.min(detect_index + 1))
            .map(|i| format!("model.{i}.*"))
            .collect();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let n = freeze::freeze_patterns(&vs, &refs, FreezeOptions::default())?;
        println!(
            "freeze={}: {n} tensors of model.0 … model.{} frozen",
            cfg.freeze,
            cfg.freeze - 1
        );
    }
    let meta = RunMeta {
        scale: model.config().scale.name,
        names: yaml.names.clone(),
        imgsz: cfg.imgsz,
        arch: Some(model.config().version.prefix().to_string()),
    };
    session.write_meta(&meta)?;

    // `batch` is the total over the ranks, as Ultralytics' DDP takes it: each rank loads its
    // share of it, and the nominal batch (accumulation, weight decay) stays the total's.
    let world = group.map_or(1, |g| g.world_size());
    let shard = |pad: bool| group.map(|g| Shard::new(g.rank(), g.world_size(), pad));
    let rank_batch = (cfg.batch / world).max(1);
    let train_loader = loader(&train_data, cfg, true, rank_batch)?.with_shard(shard(true));
    let val_loader = loader(&val_data, cfg, false, rank_batch * 2)?.with_shard(shard(false));
    let batches = train_loader.num_batches();
    let nominal = cfg.nbs as f64 / cfg.batch as f64;
    let accumulate = nominal.round_ties_even().max(1.0);
    let decay = cfg.weight_decay * cfg.batch as f64 * accumulate / cfg.nbs as f64;
    let (kind, lr0, momentum, bias_lr) = choose_optimizer(cfg, nc, train_data.items.len())?;
    println!(
        "optimizer: {kind:?} lr0={lr0} momentum={momentum}, weight decay {decay:.2e} on convolution weights, accumulate {accumulate} batches of {}",
        cfg.batch
    );
    // MuSGD trains the class branches (one-to-one ones too) three times as fast.
    let boost: Vec<String> = if matches!(kind, OptimizerKind::MuSgd { .. }) {
        let d = model.config().version.detect_index();
        vec![format!("model.{d}.cv3."), format!("model.{d}.one2one_cv3.")]
    } else {
        Vec::new()
    };
    let mut opt = Optimizer::new(kind, yolo_groups(&vs, decay, &boost), lr0);
    // Ultralytics 8.4: warmup leaves at least the last epoch for regular training (8.3 instead
    // warmed up for at least 100 iterations).
    let warmup_iters = if cfg.warmup_epochs > 0.0 {
        let epochs = cfg.warmup_epochs.min(cfg.epochs.saturating_sub(1) as f64);
        (epochs * batches as f64).round_ties_even() as usize
    } else {
        0
    };
    let recipe = Recipe {
        batches,
        warmup_iters,
        epochs: cfg.epochs,
        lr0,
        lrf: cfg.lrf,
        // Warmup raises SGD's and MuSGD's momentum to the `momentum` setting, whatever
        // optimizer=auto built them with; Adam's β₁ is not warmed (Ultralytics 8.4).
        momentum: cfg.momentum,
        warm_momentum: matches!(
            kind,
            OptimizerKind::Sgd { .. } | OptimizerKind::MuSgd { .. }
        ),
        warmup_momentum: cfg.warmup_momentum,
        warmup_bias_lr: bias_lr,
        nominal,
    };
    let loss = YoloLoss::for_model(
        &model,
        LossGains {
            box_gain: cfg.box_gain,
            cls: cfg.cls,
            dfl: cfg.dfl,
        },
    );
    let mut task = DetectTask {
        model: &model,
        loss,
        epochs: cfg.epochs,
        train: train_loader,
        val: val_loader,
        batches: None,
        device,
        recipe,
        sums: [0.0; 3],
        steps: 0,
        mosaic_off: cfg.epochs.saturating_sub(cfg.close_mosaic),
        world: world as f64,
    };
    let train_cfg = TrainConfig {
        epochs: cfg.epochs,
        lr: lr0,
        schedule: Schedule {
            decay: Decay::Constant,
            warmup_iters: 0,
            warmup_start: 1.0,
        },
        accumulate: recipe.accumulate(),
        accumulate_mean: false,
        grad_clip: Some(10.0),
        ema: Some((0.9999, 2000.0)),
        monitor: "fitness".into(),
        maximize: true,
        patience: Some(cfg.patience),
        seed: cfg.seed,
        amp: device.is_cuda(),
        tensorboard: cfg.tensorboard,
    };
    let outcome = session.fit(&vs, &mut task, &mut opt, &train_cfg)?;
    println!(
        "{} epochs completed ({:?})",
        outcome.epochs_completed, outcome.reason
    );

    // Final validation of the best weights, with plots (every rank scores its share; rank 0,
    // which wrote the weights before the engine's closing barrier, reports).
    let run = session.path();
    let best = session.run().best();
    let sd = weights::read(&best)?;
    weights::load(&vs, model.config().version, &sd, &best)?;
    let out = evaluate(&model, &task.val, &NmsConfig::val(), device, None)?;
    if !distributed::is_main_process() {
        return Ok(TrainSummary {
            run,
            map50: out.report.map50,
            map50_95: out.report.map50_95,
        });
    }
    println!("validating {}:", best.display());
    report(&out, &yaml.names, &run)?;
    println!("results in {}", run.display());
    Ok(TrainSummary {
        run,
        map50: out.report.map50,
        map50_95: out.report.map50_95,
    })
}

/// `optimizer=auto` and the explicit choices: (rule, lr0, momentum, warmup bias lr).
fn choose_optimizer(
    cfg: &DetectConfig,
    nc: i64,
    images: usize,
) -> Result<(OptimizerKind, f64, f64, f64)> {
    let adamw = |m: f64| OptimizerKind::AdamW {
        beta1: m,
        beta2: 0.999,
        eps: 1e-8,
    };
    let musgd = |m: f64| OptimizerKind::MuSgd {
        momentum: m,
        nesterov: true,
        muon: 0.2,
        sgd: 1.0,
    };
    Ok(match cfg.optimizer.to_ascii_lowercase().as_str() {
        "auto" => {
            let iterations = images.div_ceil(cfg.batch.max(cfg.nbs)) * cfg.epochs;
            if iterations > 10_000 {
                // Ultralytics 8.4's choice for long runs, every YOLO (8.3 took SGD), with no
                // bias warmup.
                (musgd(0.9), 0.01, 0.9, 0.0)
            } else {
                let lr = (0.002 * 5.0 / (4.0 + nc as f64) * 1e6).round() / 1e6;
                (adamw(0.9), lr, 0.9, 0.0)
            }
        }
        "sgd" => (
            OptimizerKind::Sgd {
                momentum: cfg.momentum,
                dampening: 0.0,
                nesterov: true,
            },
            cfg.lr0,
            cfg.momentum,
            cfg.warmup_bias_lr,
        ),
        "adamw" => (adamw(cfg.momentum), cfg.lr0, cfg.momentum, 0.0),
        "musgd" => (
            musgd(cfg.momentum),
            cfg.lr0,
            cfg.momentum,
            cfg.warmup_bias_lr,
        ),
        "adam" => (
            OptimizerKind::Adam {
                beta1: cfg.momentum,
                beta2: 0.999,
                eps: 1e-8,
            },
            cfg.lr0,
            cfg.momentum,
            0.0,
        ),
        other => bail!("optimizer={other}: expected auto, SGD, MuSGD, AdamW or Adam"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_and_decay_follow_the_recipe() {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let _w = (&root / "model" / 0 / "conv").randn("weight", &[2, 2, 1, 1], 0.0, 1.0);
        let _b = (&root / "model" / 22 / "cv2" / 0 / 2).zeros("bias", &[2]);
        let _n = (&root / "model" / 0 / "bn").ones("weight", &[2]);
        let mut opt = Optimizer::new(
            OptimizerKind::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
            },
            yolo_groups(&vs, 5e-4, &[]),
            0.01,
        );
        let r = Recipe {
            batches: 10,
            warmup_iters: 100,
            epochs: 20,
            lr0: 0.01,
            lrf: 0.01,
            momentum: 0.937,
            warm_momentum: true,
            warmup_momentum: 0.8,
            warmup_bias_lr: 0.1,
            nominal: 4.0,
        };
        // Start of warmup: bias at 0.1, others 0, accumulate 1.
        assert_eq!(r.apply(&mut opt, 0, 0), 1);
        assert_eq!(opt.lrs(), &[0.1, 0.0, 0.0]);
        // Halfway (iteration 50, epoch 5): lf(5) = 0.75·0.99 + 0.01 = 0.7525.
        assert_eq!(r.apply(&mut opt, 5, 0), 2); // 2.5 rounds to even, as numpy does
        let target = 0.01 * 0.7525;
        let lrs = opt.lrs().to_vec();
        assert!(
            (lrs[0] - (0.1 + (target - 0.1) * 0.5)).abs() < 1e-12,
            "{lrs:?}"
        );
        assert!((lrs[1] - target * 0.5).abs() < 1e-12);
        // After warmup: every group at lr0·lf(epoch), accumulate nbs/batch.
        assert_eq!(r.apply(&mut opt, 15, 3), 4);
        let lf15 = 0.25 * 0.99 + 0.01;
        assert!(opt.lrs().iter().all(|&l| (l - 0.01 * lf15).abs() < 1e-12));
        assert_eq!(opt.groups()[0].params[0].0, "model.22.cv2.0.2.bias");
        assert_eq!(opt.groups()[2].params[0].0, "model.0.bn.weight");
        assert_eq!(opt.groups()[1].weight_decay, 5e-4);
    }
}
