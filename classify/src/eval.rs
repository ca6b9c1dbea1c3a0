//! `classify val` (alias `eval`): accuracy, top-5, per-class precision/recall/F1 and the
//! confusion matrix of a trained run (or of raw weights) on a labelled folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use ferrovis_core::metrics::charts::heatmap_png;
use ferrovis_core::metrics::classification::{
    top_k_accuracy, ClassificationReport, ConfusionMatrix,
};
use ferrovis_core::metrics::render::classification_table;
use ferrovis_core::run::RunDir;
use ferrovis_data::dataset::{image_folder, ClassificationDataset, ScanOptions};
use ferrovis_data::loader::{Loader, LoaderOptions, Sampler};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::config::ClassifyConfig;
use crate::model::Classifier;
use crate::predict;
use crate::run::RunMeta;

/// Everything `val` measures, as written to `val.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    /// Class names.
    pub classes: Vec<String>,
    /// Images evaluated.
    pub images: usize,
    /// Accuracy, per-class P/R/F1, averages, confusion matrix.
    pub report: ClassificationReport,
    /// Top-5 accuracy, with five classes or more.
    pub top5: Option<f64>,
}

/// Evaluates `file`, one of `run`'s weights files (usually its best), on `data` (default: the
/// run's validation set).
pub fn eval_run(
    run: &RunDir,
    file: &Path,
    data: Option<&Path>,
    device: Device,
    out: Option<&Path>,
) -> Result<EvalResult> {
    let folder = match data {
        Some(d) => d.to_path_buf(),
        None => {
            let cfg: ClassifyConfig = ferrovis_core::config::load(Some(&run.config()), &[])?;
            let root = PathBuf::from(&cfg.data.root);
            let val = root.join(&cfg.data.val);
            if !val.is_dir() {
                bail!(
                    "the run's data has no {} folder: pass --data with a labelled folder",
                    val.display()
                );
            }
            val
        }
    };
    let (mut clf, meta) = predict::load_run(run, file, device)?;
    clf.vs.freeze();
    evaluate(&clf, &meta, &folder, device, out.unwrap_or(run.path()))
}

/// Evaluates a checkpoint of `arch` (not a run folder) on a labelled folder: its head must have
/// one output per class folder, in sorted folder order.
pub fn eval_weights(
    weights: &Path,
    arch: &str,
    folder: &Path,
    device: Device,
    out: &Path,
) -> Result<EvalResult> {
    let (mut clf, outputs, transform) = predict::load(
        &predict::ModelSource::Weights {
            path: weights.to_path_buf(),
            arch: arch.to_string(),
        },
        device,
    )?;
    clf.vs.freeze();
    let classes = image_folder(folder, ScanOptions::default())?.classes;
    if outputs.len() != classes.len() {
        bail!(
            "{} has {} outputs but {} has {} class folders",
            weights.display(),
            outputs.len(),
            folder.display(),
            classes.len()
        );
    }
    let meta = RunMeta {
        arch: arch.to_string(),
        classes,
        dropout: 0.0,
        transform,
        build: Default::default(),
    };
    evaluate(&clf, &meta, folder, device, out)
}

/// The report (accuracy, per-class P/R/F1, confusion matrix) and, with five classes or more,
/// the top-5 accuracy of `logits` `(N, C)` against `labels` `(N,)`.
pub fn score(
    logits: &Tensor,
    labels: &Tensor,
    num_classes: usize,
) -> Result<(ClassificationReport, Option<f64>)> {
    let (logits, labels) = (logits.to_device(Device::Cpu), labels.to_device(Device::Cpu));
    let pred: Vec<i64> = Vec::try_from(logits.argmax(-1, false))?;
    let truth: Vec<i64> = Vec::try_from(&labels)?;
    let mut cm = ConfusionMatrix::new(num_classes);
    cm.update(
        &truth.iter().map(|&v| v as usize).collect::<Vec<_>>(),
        &pred.iter().map(|&v| v as usize).collect::<Vec<_>>(),
    )?;
    // Core's rule for exact ties (the higher class index ranks first, as scikit-learn's
    // top_k_accuracy_score), not libtorch's topk order.
    let top5 = if num_classes >= 5 {
        let scores: Vec<f32> = Vec::try_from(logits.to_kind(Kind::Float).flatten(0, -1))?;
        let targets: Vec<usize> = truth.iter().map(|&v| v as usize).collect();
        Some(top_k_accuracy(&scores, num_classes, &targets, 5)?)
    } else {
        None
    };
    Ok((ClassificationReport::from_confusion(&cm), top5))
}

/// Evaluates a classifier on an ImageFolder whose classes must be the model's.
pub fn evaluate(
    clf: &Classifier,
    meta: &RunMeta,
    folder: &Path,
    device: Device,
    out: &Path,
) -> Result<EvalResult> {
    let data = image_folder(folder, ScanOptions::default())?;
    if data.classes != meta.classes {
        bail!(
            "{} has classes {:?}, the model was trained on {:?}",
            folder.display(),
            data.classes,
            meta.classes
        );
    }
    let loader = Loader::new(
        ClassificationDataset::new(data.items.clone(), meta.transform.clone()),
        LoaderOptions {
            batch_size: 32,
            sampler: Sampler::Sequential,
            ..Default::default()
        },
    )?;
    let (mut logits, mut labels) = (Vec::new(), Vec::new());
    for batch in loader.epoch(0) {
        let b = batch?;
        let x = b.images.to_device(device);
        logits.push(clf.scores(&x).to_device(Device::Cpu));
        labels.push(b.labels);
    }
    let (logits, labels) = (Tensor::cat(&logits, 0), Tensor::cat(&labels, 0));
    let (report, top5) = score(&logits, &labels, meta.classes.len())?;
    let truth_len = labels.size()[0] as usize;
    println!("{}", classification_table(&report, &meta.classes));
    if let Some(t) = top5 {
        println!("top-5 accuracy: {t:.4}");
    }
    std::fs::create_dir_all(out)?;
    let png = out.join("confusion_matrix.png");
    let counts: Vec<f64> = (0..meta.classes.len())
        .flat_map(|t| (0..meta.classes.len()).map(move |p| (t, p)))
        .map(|(t, p)| report.confusion.get(t, p) as f64)
        .collect();
    heatmap_png(
        &png,
        "confusion matrix",
        &counts,
        &meta.classes,
        ("true", "predicted"),
        true,
    )?;
    let result = EvalResult {
        classes: meta.classes.clone(),
        images: truth_len,
        report,
        top5,
    };
    std::fs::write(out.join("val.json"), serde_json::to_string_pretty(&result)?)?;
    println!(
        "wrote {} and {}",
        png.display(),
        out.join("val.json").display()
    );
    Ok(result)
}
