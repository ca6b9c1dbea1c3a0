//! `classify train`: the TrainTask the core engine runs, over cached backbone features (frozen
//! backbone, no augmentation: each image goes through the backbone once) or over the loader.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use ferrovis_core::backbone::BackboneOptions;
use ferrovis_core::engine::{RunControl, Session, SessionConfig, TrainConfig, TrainTask};
use ferrovis_core::knn::KnnClassifier;
use ferrovis_core::optim::{param_groups, Decay, Optimizer, OptimizerKind, Schedule};
use ferrovis_core::{checkpoint, distributed, freeze, memory_format};
use ferrovis_data::dataset::{ClassificationBatch, ClassificationData, ClassificationDataset};
use ferrovis_data::loader::{EpochBatches, Loader, LoaderOptions, Sampler, Shard};
use ferrovis_data::transform::{ClassifyTransform, Filter};
use tch::{Device, Kind, Reduction, Tensor};

use crate::config::{ClassifyConfig, Mode};
use crate::data::{pillow_filter, splits, transforms, with_checkpoint_preprocessing, Splits};
use crate::mix;
use crate::model::Classifier;
use crate::run::RunMeta;

/// The images of one split, as the task consumes them.
enum Source {
    /// Pooled backbone features `(N, F)` and labels `(N,)`, on the device.
    Features(Tensor, Tensor),
    /// Decoded and transformed by the loader each epoch.
    Images(Loader<ClassificationDataset>),
}

fn loader(
    data: &ClassificationData,
    transform: ClassifyTransform,
    cfg: &ClassifyConfig,
    sampler: Sampler,
) -> Result<Loader<ClassificationDataset>> {
    let mut dataset = ClassificationDataset::new(data.items.clone(), transform.clone());
    if cfg.data.cache {
        dataset = dataset.with_cache(transform.resize.max(transform.size));
    }
    Ok(Loader::new(
        dataset,
        LoaderOptions {
            batch_size: cfg.data.batch_size.max(1),
            sampler,
            drop_last: false,
            seed: cfg.train.seed,
            prefetch: 2,
            workers: cfg.data.workers,
        },
    )?)
}

/// Runs the frozen backbone once over every image (evaluation transform): `features` of each
/// batch (the head's input, or the k-NN embedding) and the labels.
fn extract_features(
    loader: &Loader<ClassificationDataset>,
    features: impl Fn(&Tensor) -> Tensor,
    device: Device,
) -> Result<(Tensor, Tensor)> {
    let (mut feats, mut labels) = (Vec::new(), Vec::new());
    for batch in loader.epoch(0) {
        let batch = batch?;
        let x = batch.images.to_device(device);
        feats.push(tch::no_grad(|| features(&x)));
        labels.push(batch.labels.to_device(device));
    }
    Ok((Tensor::cat(&feats, 0), Tensor::cat(&labels, 0)))
}

/// The classification task the engine trains.
pub struct ClassifyTask<'a> {
    clf: &'a Classifier,
    train: Source,
    val: Source,
    device: Device,
    num_classes: usize,
    batch_size: usize,
    label_smoothing: f64,
    mixup: f64,
    cutmix: f64,
    /// The backbone is frozen: run it without a graph and in eval mode.
    frozen_backbone: bool,
    /// `gradual`: the epoch that unfreezes everything.
    unfreeze_at: Option<usize>,
    /// Images go in channels-last, as the weights were laid out.
    channels_last: bool,
    batches: Option<EpochBatches<ClassificationBatch>>,
    order: Option<Tensor>,
    /// Data-parallel training: this rank's share of the cached features each epoch (the image
    /// loaders carry their own).
    shard: Option<Shard>,
}

impl ClassifyTask<'_> {
    fn loss(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        logits.cross_entropy_loss::<Tensor>(
            labels,
            None,
            Reduction::Mean,
            -100,
            self.label_smoothing,
        )
    }

    fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        let x = &self.layout(x);
        if self.frozen_backbone {
            let feats = tch::no_grad(|| self.clf.model.pooled_features(x, false));
            self.clf.model.forward_head(&feats, train)
        } else {
            self.clf.model.forward_t(x, train)
        }
    }

    fn layout(&self, x: &Tensor) -> Tensor {
        match self.channels_last {
            true => memory_format::channels_last(x).unwrap_or_else(|_| x.shallow_clone()),
            false => x.shallow_clone(),
        }
    }
}

impl TrainTask for ClassifyTask<'_> {
    fn steps_per_epoch(&self) -> usize {
        match &self.train {
            Source::Features(f, _) => {
                let n = f.size()[0] as usize;
                self.shard.map_or(n, |s| s.len(n)).div_ceil(self.batch_size)
            }
            Source::Images(l) => l.num_batches(),
        }
    }

    fn on_epoch_start(&mut self, epoch: usize) -> Result<(), ferrovis_core::Error> {
        if self.unfreeze_at == Some(epoch) {
            freeze::set_trainable(&self.clf.vs, true, Default::default(), |_| true);
            self.frozen_backbone = false;
            tracing::info!(epoch = epoch + 1, "gradual: every layer trains from now on");
        }
        match &self.train {
            // The engine has seeded libtorch's generator for this epoch: the order is reproducible.
            Source::Features(f, _) => {
                let order = Tensor::randperm(f.size()[0], (Kind::Int64, Device::Cpu));
                let order = match self.shard {
                    None => order,
                    Some(s) => s.take_tensor(&order).map_err(ferrovis_core::Error::task)?,
                };
                self.order = Some(order.to_device(self.device))
            }
            Source::Images(l) => self.batches = Some(l.epoch(epoch)),
        }
        Ok(())
    }

    fn train_step(&mut self, _epoch: usize, step: usize) -> Result<Tensor, ferrovis_core::Error> {
        match &self.train {
            Source::Features(feats, labels) => {
                let order = self
                    .order
                    .as_ref()
                    .ok_or_else(|| ferrovis_core::Error::Invalid("epoch not started".into()))?;
                let n = feats.size()[0];
                let start = (step * self.batch_size) as i64;
                let idx = order.narrow(0, start, (self.batch_size as i64).min(n - start));
                let logits = self
                    .clf
                    .model
                    .forward_head(&feats.index_select(0, &idx), true);
                Ok(self.loss(&logits, &labels.index_select(0, &idx)))
            }
            Source::Images(_) => {
                let batch = ferrovis_core::engine::next_batch(self.batches.as_mut())?;
                let x = batch.images.to_device(self.device);
                let y = batch.labels.to_device(self.device);
                match mix::mix_batch(&x, self.mixup, self.cutmix) {
                    // GoogLeNet's and Inception's auxiliary classifiers add their weighted
                    // losses while the whole network trains (the heads were re-sized with `fc`).
                    None if !self.frozen_backbone => {
                        let (logits, aux) = self.clf.model.forward_aux_t(&self.layout(&x), true);
                        Ok(aux.iter().fold(self.loss(&logits, &y), |loss, (w, a)| {
                            loss + self.loss(a, &y) * *w
                        }))
                    }
                    None => Ok(self.loss(&self.logits(&x, true), &y)),
                    Some((mixed, perm, lam)) => {
                        let logits = self.logits(&mixed, true);
                        let other = y.index_select(0, &perm);
                        Ok(self.loss(&logits, &y) * lam + self.loss(&logits, &other) * (1.0 - lam))
                    }
                }
            }
        }
    }

    fn validate(&mut self, _epoch: usize) -> Result<Vec<(String, f64)>, ferrovis_core::Error> {
        self.batches = None;
        let (logits, labels) = match &self.val {
            Source::Features(f, y) => (
                tch::no_grad(|| self.clf.model.forward_head(f, false)),
                y.shallow_clone(),
            ),
            Source::Images(l) => {
                let (mut out, mut ys) = (Vec::new(), Vec::new());
                for batch in l.epoch(0) {
                    let b = batch.map_err(ferrovis_core::Error::task)?;
                    let x = b.images.to_device(self.device);
                    out.push(tch::no_grad(|| self.logits(&x, false)));
                    ys.push(b.labels.to_device(self.device));
                }
                if out.is_empty() {
                    // A rank with no validation images (fewer images than ranks).
                    let n = self.num_classes as i64;
                    out.push(Tensor::zeros([0, n], (Kind::Float, self.device)));
                    ys.push(Tensor::zeros([0], (Kind::Int64, self.device)));
                }
                (Tensor::cat(&out, 0), Tensor::cat(&ys, 0))
            }
        };
        // Each rank scored its share: every rank gets all the predictions, so the metrics are
        // those of the whole validation set, identical on every rank and to one process's.
        let (logits, labels) = match distributed::current() {
            Some(g) => (g.gather_rows(&logits)?, g.gather_rows(&labels)?),
            None => (logits, labels),
        };
        let loss = tch::no_grad(|| self.loss(&logits, &labels)).double_value(&[]);
        let (report, top5) = crate::eval::score(&logits, &labels, self.num_classes)
            .map_err(ferrovis_core::Error::task)?;
        let mut metrics = vec![
            ("val_loss".to_string(), loss),
            ("accuracy".to_string(), report.accuracy),
        ];
        if let Some(t) = top5 {
            metrics.push(("top5".into(), t));
        }
        Ok(metrics)
    }
}

/// What a finished `train` reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run folder.
    pub run: PathBuf,
    /// Validation accuracy of the best epoch.
    pub best_accuracy: f64,
    /// Wall time of the whole run (feature extraction included).
    pub seconds: f64,
    /// Which path trained: cached features or the image loader.
    pub path: &'static str,
}

/// Trains a classifier as `cfg` says, in a new run folder, or continues the run in `resume` from
/// its last checkpoint (to the same weights as an uninterrupted run).
pub fn train(
    cfg: &ClassifyConfig,
    control: &RunControl,
    resume: Option<&Path>,
) -> Result<TrainSummary> {
    let session = Session::start(
        &SessionConfig {
            device: ferrovis_core::parse_device(&cfg.train.device)?,
            seed: cfg.train.seed,
            project: Path::new(&cfg.train.project),
            name: if cfg.train.name.is_empty() {
                mode_name(cfg.train.mode)
            } else {
                &cfg.train.name
            },
            resume,
            config_toml: ferrovis_core::config::to_toml(cfg)?,
        },
        control,
    )?;
    let device = session.device();
    if cfg.train.mode == Mode::Knn && session.shard().is_some() {
        anyhow::bail!("train.mode = \"knn\" runs in one process (nothing trains to distribute)");
    }
    let shard = |pad: bool| {
        session
            .shard()
            .map(|(rank, world)| Shard::new(rank, world, pad))
    };
    let splits = splits(&cfg.data, cfg.train.seed)?;
    println!(
        "data: {} classes ({}), {} training images, {} validation ({})",
        splits.classes.len(),
        splits.classes.join(", "),
        splits.train.items.len(),
        splits.val.items.len(),
        splits.val_source
    );
    for report in [&splits.train.report, &splits.val.report] {
        if !report.is_clean() {
            print!("{report}");
        }
    }
    // DINOv2 without weights named takes its pre-trained features from the Hub; a Hub
    // checkpoint (timm's, transformers' DINOv2) names its own architecture and preprocessing.
    let (weights, hub_ckpt) =
        ferrovis_core::hub::checkpoint::weights_for(&cfg.model.arch, &cfg.model.weights)?;
    let arch = hub_arch(&cfg.model.arch, hub_ckpt.as_ref())?;
    // A Hub checkpoint's input size and crop unless the user set others; its interpolation
    // unless `data.interpolation` names one.
    let (data, own_filter) = match &hub_ckpt {
        Some(t) => (
            with_checkpoint_preprocessing(&cfg.data, &t.config),
            pillow_filter(t.config.interpolation),
        ),
        None => (cfg.data.clone(), Filter::Area),
    };
    let filter = crate::data::filter(&data, own_filter)?;
    if let Some(t) = &hub_ckpt {
        println!(
            "preprocessing: {} px, crop_pct {}, {filter:?} resize (config.json of {}; \
             data.image_size, data.crop_pct and data.interpolation override)",
            data.image_size, data.crop_pct, t.config.architecture
        );
    }
    let knn = cfg.train.mode == Mode::Knn;
    let opts = BackboneOptions {
        // A k-NN classifier has no head.
        num_classes: if knn { 0 } else { splits.classes.len() as i64 },
        dropout: Some(cfg.model.dropout),
        image_size: Some(data.image_size as i64),
        ..Default::default()
    };
    let build = hub_ckpt.as_ref().map(|t| t.build).unwrap_or_default();
    let opts = build.apply(opts);
    let mut clf = Classifier::with_options(&arch, &opts, device)?;
    // The checkpoint's preprocessing, from the config.json read above.
    let hub_pre = hub_ckpt
        .as_ref()
        .map(|t| t.config.pretrained_cfg())
        .transpose()?;
    if let Some(t) = hub_ckpt {
        let source = format!("{weights} ({})", t.config.architecture);
        println!(
            "weights: {}",
            clf.load_pretrained_state_dict(t.state_dict, &source)?
        );
    } else if weights.is_empty() {
        println!(
            "weights: none given, {arch} starts from random initialisation (set model.weights to a \
             torchvision checkpoint, e.g. mobilenet_v2-b0353104.pth, to transfer ImageNet features)"
        );
    } else {
        println!("weights: {}", clf.load_pretrained(Path::new(&weights))?);
    }
    let groups_cfg = clf.apply_mode(&cfg.train)?;
    let (trainable, total) = clf.parameter_counts();
    println!(
        "mode: {:?}, {trainable} of {total} parameters train",
        cfg.train.mode
    );
    let pre = hub_pre.unwrap_or_else(|| clf.pretrained_cfg(&weights));
    let (train_tf, eval_tf) = transforms(&data, &pre, filter);
    let meta = RunMeta {
        arch: arch.clone(),
        classes: splits.classes.clone(),
        dropout: cfg.model.dropout,
        transform: eval_tf.clone(),
        build,
    };
    session.write_meta(&meta)?;

    let sampler = if cfg.data.balance_classes {
        let counts = splits.train.class_counts();
        Sampler::Weighted(
            splits
                .train
                .items
                .iter()
                .map(|i| 1.0 / counts[i.label].max(1) as f64)
                .collect(),
        )
    } else {
        Sampler::Shuffle
    };
    if knn {
        return fit_knn(&session, &clf, &splits, &eval_tf, cfg, device);
    }
    let cached = cfg.train.mode == Mode::FeatureExtract && !cfg.data.augment;
    // Validation is sharded without repeats; the predictions are gathered (`validate`).
    let val_loader =
        loader(&splits.val, eval_tf.clone(), cfg, Sampler::Sequential)?.with_shard(shard(false));
    let (train_src, val_src, path) = if cached {
        let t = Instant::now();
        let train_loader = loader(&splits.train, eval_tf.clone(), cfg, Sampler::Sequential)?;
        let pooled = |x: &Tensor| clf.model.pooled_features(x, false);
        let (tf, tl) = extract_features(&train_loader, pooled, device)?;
        let (vf, vl) = extract_features(&val_loader, pooled, device)?;
        println!(
            "feature extraction: the frozen backbone ran once over {} images ({:.1} s); the head trains on cached features",
            tf.size()[0] + vf.size()[0],
            t.elapsed().as_secs_f64()
        );
        (
            Source::Features(tf, tl),
            Source::Features(vf, vl),
            "cached features",
        )
    } else {
        if cfg.train.mode == Mode::FeatureExtract {
            println!("feature extraction with augmentation: the frozen backbone runs under no-grad every step");
        }
        (
            Source::Images(loader(&splits.train, train_tf, cfg, sampler)?.with_shard(shard(true))),
            Source::Images(val_loader),
            "image loader",
        )
    };
    let mut task = ClassifyTask {
        clf: &clf,
        train: train_src,
        val: val_src,
        device,
        num_classes: splits.classes.len(),
        batch_size: cfg.data.batch_size.max(1),
        label_smoothing: cfg.train.label_smoothing,
        mixup: cfg.train.mixup,
        cutmix: cfg.train.cutmix,
        frozen_backbone: matches!(cfg.train.mode, Mode::FeatureExtract | Mode::Gradual),
        unfreeze_at: (cfg.train.mode == Mode::Gradual).then_some(cfg.train.head_epochs),
        batches: None,
        order: None,
        shard: shard(true),
        channels_last: cfg.train.channels_last && !cached,
    };
    if task.channels_last {
        memory_format::vars_to_channels_last(&clf.vs)?;
    }
    let groups = param_groups(&clf.vs, &clf.model.stages(), &groups_cfg);
    let kind = OptimizerKind::from_name(&cfg.train.optimizer, cfg.train.momentum)
        .context("train.optimizer")?;
    let mut opt = Optimizer::new(kind, groups, cfg.train.lr);
    let steps = task.steps_per_epoch() as f64;
    let train_cfg = TrainConfig {
        epochs: cfg.train.epochs,
        lr: cfg.train.lr,
        schedule: schedule(&cfg.train, steps)?,
        accumulate: 1,
        accumulate_mean: true,
        grad_clip: None,
        ema: None,
        monitor: "accuracy".into(),
        maximize: true,
        patience: None,
        seed: cfg.train.seed,
        amp: cfg.train.amp && device.is_cuda(),
        tensorboard: cfg.train.tensorboard,
    };
    let outcome = session.fit(&clf.vs, &mut task, &mut opt, &train_cfg)?;
    let best_accuracy = outcome.best.map(|(v, _)| v).unwrap_or(0.0);
    Ok(TrainSummary {
        run: session.path(),
        best_accuracy,
        seconds: session.seconds(),
        path,
    })
}

/// `train.mode = "knn"`: the frozen backbone's k-NN features of every training image become
/// the classifier (`<run>/knn.safetensors`, beside the backbone's weights), scored on the
/// validation images.
fn fit_knn(
    session: &Session,
    clf: &Classifier,
    splits: &Splits,
    eval_tf: &ClassifyTransform,
    cfg: &ClassifyConfig,
    device: Device,
) -> Result<TrainSummary> {
    let t = Instant::now();
    let features = |split: &ClassificationData| {
        let loader = loader(split, eval_tf.clone(), cfg, Sampler::Sequential)?;
        extract_features(&loader, |x| clf.model.knn_features(x, false), device)
    };
    let (tf, tl) = features(&splits.train)?;
    let knn = KnnClassifier::new(
        &tf,
        &tl,
        splits.classes.len() as i64,
        cfg.train.knn_k,
        cfg.train.knn_temperature,
    )
    .context("train.knn_k / train.knn_temperature")?;
    let (vf, vl) = features(&splits.val)?;
    let probs = knn.probabilities(&vf);
    let (report, _) = crate::eval::score(&probs, &vl, splits.classes.len())?;
    let run = session.run();
    let knn_file = crate::run::knn_file(run);
    knn.save(&knn_file)?;
    let best = run.best();
    if let Some(dir) = best.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    checkpoint::save_varstore(&clf.vs, &best)?;
    println!(
        "k-NN (k = {}, T = {}) on {} training images' features: validation accuracy {:.4} over {} \
         images ({:.1} s); {}",
        knn.k(),
        knn.temperature(),
        knn.len(),
        report.accuracy,
        vl.size()[0],
        t.elapsed().as_secs_f64(),
        knn_file.display()
    );
    Ok(TrainSummary {
        run: session.path(),
        best_accuracy: report.accuracy,
        seconds: session.seconds(),
        path: "k-NN on frozen features",
    })
}

/// The learning-rate schedule `train.schedule` names, over `steps` iterations per epoch.
fn schedule(train: &crate::config::TrainSection, steps: f64) -> Result<Schedule> {
    Ok(match train.schedule.to_ascii_lowercase().as_str() {
        "cosine" => Schedule {
            decay: Decay::Cosine {
                min_factor: train.final_lr_factor,
            },
            warmup_iters: (train.warmup_epochs * steps) as u64,
            warmup_start: 0.1,
        },
        // The rise is the warmup: OneCycleLR's defaults (div 25, final div 10⁴).
        "onecycle" | "one-cycle" => Schedule {
            decay: Decay::OneCycle {
                pct: if train.warmup_epochs > 0.0 {
                    (train.warmup_epochs / train.epochs.max(1) as f64).min(1.0)
                } else {
                    0.3
                },
                div: 25.0,
                final_div: 1e4,
            },
            warmup_iters: 0,
            warmup_start: 1.0,
        },
        other => anyhow::bail!("train.schedule: {other:?} is neither cosine nor onecycle"),
    })
}

/// The folder name of a mode.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::FeatureExtract => "feature-extract",
        Mode::FineTune => "fine-tune",
        Mode::Partial => "partial",
        Mode::Gradual => "gradual",
        Mode::Knn => "knn",
    }
}

/// The architecture to build: a Hub checkpoint's own (from its `config.json`) unless
/// `model.arch` names another one, which is an error; `model.arch` otherwise. `model.arch` at its
/// default (`mobilenet_v2`) defers to the checkpoint.
fn hub_arch(configured: &str, ckpt: Option<&ferrovis_core::hub::HubCheckpoint>) -> Result<String> {
    let Some(t) = ckpt else {
        return Ok(configured.to_string());
    };
    let default = crate::config::ModelSection::default().arch;
    if configured != t.arch && configured != default {
        anyhow::bail!(
            "model.arch={configured}, but the checkpoint {} is {} (ferrovis' {}): leave \
             model.arch out or set it to {}",
            t.weights.display(),
            t.config.architecture,
            t.arch,
            t.arch
        );
    }
    Ok(t.arch.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_named_and_onecycle_rises_over_the_warmup() {
        let mut t = crate::config::TrainSection {
            epochs: 10,
            warmup_epochs: 2.0,
            ..Default::default()
        };
        let cosine = schedule(&t, 5.0).unwrap();
        assert_eq!(cosine.warmup_iters, 10);
        t.schedule = "onecycle".into();
        let one = schedule(&t, 5.0).unwrap();
        assert_eq!(
            one.decay,
            Decay::OneCycle {
                pct: 0.2,
                div: 25.0,
                final_div: 1e4
            }
        );
        assert_eq!(one.warmup_iters, 0);
        t.warmup_epochs = 0.0;
        assert!(matches!(
            schedule(&t, 5.0).unwrap().decay,
            Decay::OneCycle { pct, .. } if pct == 0.3
        ));
        t.schedule = "step".into();
        let err = schedule(&t, 5.0).unwrap_err().to_string();
        assert!(
            err.contains("train.schedule") && err.contains("step"),
            "{err}"
        );
    }
}
