//! `segment val`: one confusion matrix over every validation pixel (at each image's own size),
//! then per-class IoU, mIoU, pixel accuracy and mean Dice from core's metrics.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ferrovis_core::metrics::render::segmentation_table;
use ferrovis_core::metrics::segmentation::{SegmentationConfusion, SegmentationReport};
use ferrovis_data::dataset::{SegmentResize, SegmentationData, SegmentationDataset};
use ferrovis_data::loader::{Loader, LoaderOptions, Sampler};
use serde::Serialize;
use tch::{Device, Kind, Reduction};

use crate::infer::{probabilities, InferOptions};
use crate::loss::IGNORE_INDEX;
use crate::model::SegmentationModel;

/// What `val` measures, as written to `val.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Class names.
    pub names: Vec<String>,
    /// Images evaluated.
    pub images: usize,
    /// Mean per-image cross-entropy of the predicted probabilities (ignored pixels left out).
    pub loss: f64,
    /// Metrics.
    pub report: SegmentationReport,
    /// Wall time.
    pub seconds: f64,
}

impl Evaluation {
    /// The per-class table and the summary line.
    pub fn table(&self) -> String {
        format!(
            "{}\n{} images, {:.1} s; loss {:.4}",
            segmentation_table(&self.report, &self.names),
            self.images,
            self.seconds,
            self.loss
        )
    }
}

/// A loader over `data` at each image's own size (batch 1), normalised with `mean`/`std`.
pub fn loader(
    data: &SegmentationData,
    mean: [f64; 3],
    std: [f64; 3],
    cache: bool,
    workers: usize,
) -> Result<Loader<SegmentationDataset>> {
    let mut ds = SegmentationDataset::new(data.clone(), SegmentResize::Original, mean, std);
    if cache {
        ds = ds.with_cache();
    }
    Ok(Loader::new(
        ds,
        LoaderOptions {
            batch_size: 1,
            sampler: Sampler::Sequential,
            drop_last: false,
            seed: 0,
            prefetch: 2,
            workers,
        },
    )?)
}

/// Runs the model over every image of `loader`.
pub fn evaluate(
    model: &SegmentationModel,
    loader: &Loader<SegmentationDataset>,
    names: &[String],
    opts: &InferOptions,
    device: Device,
) -> Result<Evaluation> {
    let t0 = Instant::now();
    let mut confusion = SegmentationConfusion::new(names.len(), IGNORE_INDEX);
    let (mut loss_sum, mut images) = (0.0, 0usize);
    for batch in loader.epoch(0) {
        let batch = batch?;
        let x = batch.images.to_device(device);
        let target = batch.masks.to_device(device);
        let probs = probabilities(model, &x, opts);
        let prediction = probs.argmax(1, false);
        let source = batch
            .indices
            .first()
            .and_then(|&i| loader.dataset().data().items.get(i))
            .map(|i| i.mask.display().to_string())
            .unwrap_or_default();
        confusion
            .update(&prediction, &target)
            .with_context(|| format!("scoring {source}"))?;
        if target.ne(IGNORE_INDEX).any().int64_value(&[]) != 0 {
            let nll = probs.clamp_min(1e-12).log().nll_loss2d::<tch::Tensor>(
                &target,
                None,
                Reduction::Mean,
                IGNORE_INDEX,
            );
            loss_sum += nll.to_kind(Kind::Double).double_value(&[]);
        }
        images += batch.indices.len();
    }
    // A sharded loader (data-parallel run): the confusion matrices and loss sums of the ranks'
    // shares are summed, so every rank reports the whole set's numbers.
    if loader.shard().is_some() {
        if let Some(g) = ferrovis_core::distributed::current() {
            confusion.all_reduce(g)?;
            let mut sums = [loss_sum, images as f64];
            g.all_reduce_f64(&mut sums, ferrovis_core::distributed::ReduceOp::Sum)?;
            loss_sum = sums[0];
            images = sums[1] as usize;
        }
    }
    Ok(Evaluation {
        names: names.to_vec(),
        images,
        loss: if images > 0 {
            loss_sum / images as f64
        } else {
            0.0
        },
        report: confusion.report(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Writes `val.json` into `dir`.
pub fn write_json(dir: &Path, evaluation: &Evaluation) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("val.json");
    std::fs::write(&path, serde_json::to_string_pretty(evaluation)?)
        .with_context(|| format!("writing {}", path.display()))
}
