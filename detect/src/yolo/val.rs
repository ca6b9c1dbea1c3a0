//! Validation: letterboxed images through the model, NMS with Ultralytics' validation settings,
//! and the detection metrics of the core crate (`Class Images Instances P R mAP50 mAP50-95`), a
//! PR-curve and a confusion-matrix PNG.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ferrovis_core::metrics::detection::{DetectionConfusion, GroundTruth};
use ferrovis_core::metrics::{charts, DetectionAccumulator, DetectionReport};
use ferrovis_data::dataset::DetectionDataset;
use ferrovis_data::loader::Loader;
use tch::Device;

use crate::output;
use crate::yolo::loss::YoloLoss;
use crate::yolo::model::Yolo;
use crate::yolo::postprocess::{end2end_detections, non_max_suppression, NmsConfig};

/// What one validation pass measured.
#[derive(Debug)]
pub struct ValOutput {
    /// Precision, recall, mAP per class and overall.
    pub report: DetectionReport,
    /// Ultralytics' detection confusion matrix (conf 0.25, IoU 0.45).
    pub confusion: DetectionConfusion,
    /// Mean validation loss parts (box, cls, dfl) when a loss was given.
    pub losses: Option<[f64; 3]>,
    /// Milliseconds per image (forward + NMS).
    pub ms_per_image: f64,
}

impl ValOutput {
    /// Ultralytics' fitness: 0.1·mAP50 + 0.9·mAP50-95.
    pub fn fitness(&self) -> f64 {
        0.1 * self.report.map50 + 0.9 * self.report.map50_95
    }
}

/// Runs the model over every batch of `loader` (no augmentation) and scores the detections
/// against the boxes in the input's pixels (IoU does not change under the letterbox's uniform
/// scale, so the numbers equal those in original pixels, up to clipping).
pub fn evaluate(
    model: &Yolo,
    loader: &Loader<DetectionDataset>,
    nms: &NmsConfig,
    device: Device,
    loss: Option<&YoloLoss>,
) -> Result<ValOutput> {
    let nc = model.config().num_classes as usize;
    let mut acc = DetectionAccumulator::new(nc);
    let mut confusion = DetectionConfusion::new(nc);
    let mut loss_sum = [0.0; 3];
    let (mut batches, mut images, mut seconds) = (0usize, 0usize, 0.0);
    for batch in loader.epoch(0) {
        let batch = batch.context("loading a validation batch")?;
        let x = batch.images.to_device(device);
        let t = Instant::now();
        // YOLO26's one-to-one head only where it is read: its detections, or the loss.
        let (raw, one2one) = if nms.end2end || matches!(loss, Some(YoloLoss::EndToEnd(_))) {
            tch::no_grad(|| model.forward_both(&x, false))
        } else {
            (tch::no_grad(|| model.forward_t(&x, false)), None)
        };
        let detections = match one2one.as_ref().filter(|_| nms.end2end) {
            // An end-to-end model's one-to-one head: at most max_det rows, no NMS.
            Some(o2o) => end2end_detections(
                &tch::no_grad(|| model.detect().decode_end2end(o2o, nms.max_det as i64)),
                nms,
            ),
            None => non_max_suppression(&tch::no_grad(|| model.decode(&raw)), nms),
        };
        seconds += t.elapsed().as_secs_f64();
        if let Some(l) = loss {
            let out = tch::no_grad(|| l.compute(&raw, one2one.as_deref(), &batch.targets));
            for (s, p) in loss_sum.iter_mut().zip(out.parts) {
                *s += p;
            }
        }
        for ((dets, info), &index) in detections.iter().zip(&batch.info).zip(&batch.indices) {
            let truths: Vec<GroundTruth> = info
                .boxes
                .iter()
                .map(|b| GroundTruth {
                    bbox: b.xyxy,
                    class: b.class,
                })
                .collect();
            acc.add_image_at(index, dets, &truths)?;
            confusion.add_image(dets, &truths);
        }
        batches += 1;
        images += batch.info.len();
    }
    // A sharded loader (data-parallel run): every rank scored its share; the statistics are
    // gathered so that each reports the whole set's metrics, those of one process.
    if loader.shard().is_some() {
        if let Some(g) = ferrovis_core::distributed::current() {
            acc.all_gather(g)?;
            confusion.all_reduce(g)?;
            let mut sums = [loss_sum[0], loss_sum[1], loss_sum[2], batches as f64];
            g.all_reduce_f64(&mut sums, ferrovis_core::distributed::ReduceOp::Sum)?;
            loss_sum = [sums[0], sums[1], sums[2]];
            batches = sums[3] as usize;
        }
    }
    crate::output::warn_left_out(&loader.failures());
    Ok(ValOutput {
        report: acc.report(),
        confusion,
        losses: (loss.is_some() && batches > 0).then(|| loss_sum.map(|s| s / batches as f64)),
        ms_per_image: 1000.0 * seconds / images.max(1) as f64,
    })
}

/// Prints the table and writes `PR_curve.png`, `confusion_matrix.png` and `metrics.json` into `dir`.
pub fn report(out: &ValOutput, names: &[String], dir: &Path) -> Result<()> {
    output::print_table(&out.report, names);
    println!(
        "speed: {:.1} ms per image (inference + NMS)",
        out.ms_per_image
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut labels = names.to_vec();
    labels.push("background".into());
    let counts: Vec<f64> = out.confusion.counts.iter().map(|&c| c as f64).collect();
    charts::heatmap_png(
        &dir.join("confusion_matrix.png"),
        "Confusion matrix",
        &counts,
        &labels,
        ("predicted", "true"),
        true,
    )?;
    let json = serde_json::json!({
        "metrics": &out.report,
        "fitness": out.fitness(),
        "confusion_matrix": &out.confusion,
        "names": names,
    });
    output::write_validation(&out.report, names, dir, &json)
}
