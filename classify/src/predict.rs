//! `classify predict`: class names and probabilities for images, from a run folder or from a
//! plain checkpoint (an ImageNet checkpoint prints ImageNet class names).

use ferrovis_data::dataset::default_class_names;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ferrovis_core::backbone::{BackboneOptions, PretrainedCfg};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::knn::KnnClassifier;
use ferrovis_core::run::{resolve_weights, RunDir};
use ferrovis_data::draw::draw_lines;
use ferrovis_data::image::RgbImage;
use ferrovis_data::rng::derive;
use ferrovis_data::sources::{SkipLog, Source};
use ferrovis_data::transform::{ClassifyTransform, Filter};
use ferrovis_data::video::{run_frames, VideoOptions, VideoOutcome};
use serde::Serialize;
use tch::{Device, Tensor};

use crate::model::Classifier;
use crate::run::RunMeta;

/// ImageNet-1k class names in torchvision's order.
const IMAGENET_CLASSES: &str = include_str!("../assets/imagenet_classes.txt");

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A run folder written by `classify train` (classes and preprocessing from its
    /// `classify.json`) and the weights file to load, one of the run's.
    Run {
        /// The run folder.
        run: RunDir,
        /// Its best weights, or the file given.
        file: PathBuf,
    },
    /// A checkpoint of `arch` (any format); the class count is read from its head.
    Weights {
        /// The checkpoint.
        path: PathBuf,
        /// The backbone it was saved from.
        arch: String,
    },
    /// A Hub checkpoint with its own configuration (`hf-hub:timm/<arch>.<tag>`, a transformers
    /// DINOv2 classifier, or their folders): architecture, classes, label names and
    /// preprocessing from its `config.json`.
    Hub {
        /// The `hf-hub:` name or the folder.
        spec: String,
    },
}

impl ModelSource {
    /// A run folder's best weights.
    pub fn run(run: &Path) -> Self {
        let run = RunDir::new(run);
        let file = run.best();
        ModelSource::Run { run, file }
    }

    /// `--weights PATH [--arch NAME]`: a run folder, or a weights file inside one, brings its
    /// metadata; any other checkpoint needs `arch`.
    pub fn resolve(path: &Path, arch: Option<&str>) -> Result<Self> {
        let spec = path.to_string_lossy();
        if ferrovis_core::hub::checkpoint::is_hub_checkpoint(&spec) {
            return Ok(ModelSource::Hub {
                spec: spec.into_owned(),
            });
        }
        let resolved = resolve_weights(path)?;
        match (resolved.run, arch) {
            (Some(run), None) if run.has_meta::<RunMeta>() => Ok(ModelSource::Run {
                run,
                file: resolved.file,
            }),
            (_, Some(arch)) => Ok(ModelSource::Weights {
                path: resolved.file,
                arch: arch.to_string(),
            }),
            (_, None) => anyhow::bail!(
                "{} is not in a classify run folder (no classify.json): give --arch NAME for a \
                 plain checkpoint",
                path.display()
            ),
        }
    }
}

/// One image's top classes.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The image file (a video's file, camera or stream, for its frames).
    pub image: PathBuf,
    /// A video's frame number, from 1, among the frames kept (`vid_stride`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<usize>,
    /// `(class name, probability)`, most probable first.
    pub top: Vec<(String, f64)>,
}

/// Loads the model and its class names and preprocessing.
pub fn load(
    source: &ModelSource,
    device: Device,
) -> Result<(Classifier, Vec<String>, ClassifyTransform)> {
    match source {
        ModelSource::Run { run, file } => {
            let (clf, meta) = load_run(run, file, device)?;
            Ok((clf, meta.classes, meta.transform))
        }
        ModelSource::Hub { spec } => {
            let t = ferrovis_core::hub::checkpoint::read(spec)?;
            let n = t.config.num_classes;
            if n == 0 {
                anyhow::bail!(
                    "{spec} ({}) has no classifier: train one on your classes with `classify \
                     train --weights {spec}`, then predict with the run",
                    t.config.architecture
                );
            }
            let pre = t.config.pretrained_cfg()?;
            // Built at the evaluation size, so that a transformer's positional embedding is
            // resized once, as its source resizes it.
            let opts = t.build.apply(BackboneOptions {
                num_classes: n,
                dropout: Some(0.0),
                image_size: Some(pre.input_size),
                ..Default::default()
            });
            let clf = Classifier::with_options(&t.arch, &opts, device)?;
            let mut sd = t.state_dict;
            clf.model
                .adapt_checkpoint(&mut sd)
                .with_context(|| format!("{spec} does not fit {}", t.arch))?;
            checkpoint::load_into(&clf.vs, &sd, &LoadOptions::default().strict(true))
                .with_context(|| format!("loading {spec} into {}", t.arch))?;
            let classes = match t.config.label_names {
                Some(names) if names.len() == n as usize => names,
                _ => class_names(n),
            };
            let transform = eval_transform(&pre, crate::data::pillow_filter(pre.interpolation));
            Ok((clf, classes, transform))
        }
        ModelSource::Weights { path, arch } => {
            let sd =
                checkpoint::read(path).with_context(|| format!("reading {}", path.display()))?;
            // The head's output size is the class count: find it with a throwaway model's names.
            let probe = Classifier::new(arch, 1, 0.0, Device::Cpu)?;
            let head = regex::Regex::new(&probe.model.head_pattern())?;
            let num_classes = sd
                .iter()
                .filter(|(n, t)| head.is_match(n) && t.dim() == 2)
                .map(|(_, t)| t.size()[0])
                .next()
                .with_context(|| {
                    format!("{}: no classifier weights for {arch} found", path.display())
                })?;
            let clf = Classifier::new(arch, num_classes as usize, 0.0, device)?;
            checkpoint::load_into(&clf.vs, &sd, &LoadOptions::default().strict(true))
                .with_context(|| format!("loading {} into {arch}", path.display()))?;
            let classes = class_names(num_classes);
            let pre = clf.model.pretrained_cfg();
            let transform = eval_transform(&pre, Filter::Area);
            Ok((clf, classes, transform))
        }
    }
}

/// The evaluation preprocessing `pre` describes: resize (with `filter`), centre crop,
/// normalisation.
fn eval_transform(pre: &PretrainedCfg, filter: Filter) -> ClassifyTransform {
    ClassifyTransform {
        resize: pre.resize_size as usize,
        filter,
        mean: pre.mean,
        std: pre.std,
        ..ClassifyTransform::eval(pre.input_size as usize)
    }
}

/// Names for a checkpoint's `n` outputs: ImageNet's for 1000, `class_0`… otherwise.
fn class_names(n: i64) -> Vec<String> {
    if n == 1000 {
        IMAGENET_CLASSES.lines().map(String::from).collect()
    } else {
        default_class_names(n as usize)
    }
}

/// A classifier rebuilt from a run folder's metadata with the weights of `file` (one of the run's
/// weights files) loaded strictly.
pub fn load_run(run: &RunDir, file: &Path, device: Device) -> Result<(Classifier, RunMeta)> {
    let meta: RunMeta = run.read_meta()?;
    // A k-NN run's weights are the backbone alone; its classifier is the features file.
    let knn_file = crate::run::knn_file(run);
    let knn = knn_file.is_file();
    let opts = meta.build.apply(BackboneOptions {
        num_classes: if knn { 0 } else { meta.classes.len() as i64 },
        dropout: Some(meta.dropout),
        image_size: Some(meta.transform.size as i64),
        ..Default::default()
    });
    let mut clf = Classifier::with_options(&meta.arch, &opts, device)?;
    checkpoint::load_file(&clf.vs, file, &LoadOptions::default().strict(true))
        .with_context(|| format!("loading {} into {}", file.display(), meta.arch))?;
    if knn {
        let knn = KnnClassifier::load(&knn_file, device)?;
        let width = tch::no_grad(|| {
            let size = meta.transform.size as i64;
            let probe = tch::Tensor::zeros([1, 3, size, size], (tch::Kind::Float, device));
            clf.model.knn_features(&probe, false).size()[1]
        });
        if knn.num_classes() != meta.classes.len() as i64 || knn.dim() != width {
            anyhow::bail!(
                "{}: {} classes of {}-wide features, but the run has {} classes and {} gives \
                 {width}-wide ones",
                knn_file.display(),
                knn.num_classes(),
                knn.dim(),
                meta.classes.len(),
                meta.arch
            );
        }
        clf.knn = Some(knn);
    }
    Ok((clf, meta))
}

/// The `top_k` classes of each image.
pub fn predict(
    clf: &Classifier,
    classes: &[String],
    transform: &ClassifyTransform,
    images: &[PathBuf],
    top_k: usize,
    device: Device,
) -> Result<Vec<Prediction>> {
    let (out, skipped) = predict_files(clf, classes, transform, images, top_k, device)?;
    skipped.finish(out.len())?;
    Ok(out)
}

/// [`predict`] that skips the files it cannot read (each named once on stderr) instead of
/// failing on them: the predictions of the others and the record of the skipped ones.
pub fn predict_files(
    clf: &Classifier,
    classes: &[String],
    transform: &ClassifyTransform,
    images: &[PathBuf],
    top_k: usize,
    device: Device,
) -> Result<(Vec<Prediction>, SkipLog)> {
    let k = top_k.clamp(1, classes.len());
    let mut out = Vec::with_capacity(images.len());
    let mut skipped = SkipLog::default();
    for image in images {
        let x = match transform.apply_file(image, &mut derive(0, &[])) {
            Ok(x) => x.unsqueeze(0).to_device(device),
            Err(e) => {
                skipped.skip(image, e);
                continue;
            }
        };
        out.push(Prediction {
            image: image.clone(),
            frame: None,
            top: top_classes(clf, classes, &x, k)?,
        });
    }
    Ok((out, skipped))
}

/// The `k` most probable classes of one preprocessed image `x` (1, 3, H, W).
fn top_classes(
    clf: &Classifier,
    classes: &[String],
    x: &Tensor,
    k: usize,
) -> Result<Vec<(String, f64)>> {
    let probs = clf.probabilities(x);
    let (p, idx) = probs.squeeze_dim(0).topk(k as i64, 0, true, true);
    let p: Vec<f32> = Vec::try_from(p.to_device(Device::Cpu))?;
    let idx: Vec<i64> = Vec::try_from(idx.to_device(Device::Cpu))?;
    Ok(idx
        .iter()
        .zip(p)
        .map(|(&i, p)| (classes[i as usize].clone(), p as f64))
        .collect())
}

/// One video, camera or stream through the classifier: each frame's top classes, drawn on it
/// into `<out>/<stem>.avi` (as `opts` says) and returned with the frame number.
#[allow(clippy::too_many_arguments)]
pub fn predict_video(
    clf: &Classifier,
    classes: &[String],
    transform: &ClassifyTransform,
    source: &Source,
    out: &Path,
    opts: &VideoOptions,
    top_k: usize,
    device: Device,
) -> Result<(Vec<Prediction>, VideoOutcome)> {
    let k = top_k.clamp(1, classes.len());
    let name = PathBuf::from(source.name());
    let mut predictions = Vec::new();
    let outcome = run_frames(source, out, opts, |frame| -> Result<RgbImage> {
        let x = transform
            .apply(&frame.image, &mut derive(0, &[]))?
            .unsqueeze(0)
            .to_device(device);
        let top = top_classes(clf, classes, &x, k)?;
        let lines: Vec<String> = top.iter().map(|(c, p)| format!("{c} {p:.2}")).collect();
        let drawn = draw_lines(&frame.image, &lines)?;
        predictions.push(Prediction {
            image: name.clone(),
            frame: Some(frame.number),
            top,
        });
        Ok(drawn)
    })?;
    Ok((predictions, outcome))
}

/// Prints predictions as text lines or a JSON array.
pub fn print(predictions: &[Prediction], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(predictions)?);
        return Ok(());
    }
    for p in predictions {
        let top: Vec<String> = p.top.iter().map(|(c, v)| format!("{c} {v:.3}")).collect();
        let frame = p.frame.map(|f| format!(" frame {f}")).unwrap_or_default();
        println!("{}{frame}: {}", p.image.display(), top.join(", "));
    }
    Ok(())
}
