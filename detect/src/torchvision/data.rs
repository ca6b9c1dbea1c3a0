//! Samples for torchvision's detectors: each image decoded at its own size as a `(3, H, W)`
//! float tensor in 0–1 (the model's transform resizes and normalises it), its boxes in pixels
//! and its labels 1-based (0 is the background). Training augments as torchvision's references
//! do: flips left-right (`hflip`, Faster R-CNN's), or SSD's photometric distortion, zoom-out and
//! IoU crop before the flip ([`SsdAugment`]).

use std::path::PathBuf;

use ferrovis_core::metrics::detection::GroundTruth;
use ferrovis_data::dataset::DetectionItem;
use ferrovis_data::decode::read_rgb;
use ferrovis_data::loader::Dataset;
use ferrovis_data::rng::Rng;
use ferrovis_data::tensor::to_normalized_chw;
use ferrovis_data::transform::detect::{BoxLabel, DetectionSample};
use ferrovis_data::transform::ssd::SsdAugment;
use tch::{Kind, Tensor};

use crate::torchvision::targets::Target;

/// One loaded image.
#[derive(Debug)]
pub struct Sample {
    /// `(3, H, W)` float in 0–1.
    pub image: Tensor,
    /// Boxes (pixels of this, possibly augmented, image) and 1-based labels.
    pub target: Target,
    /// The same boxes with 0-based classes, for the metrics.
    pub truths: Vec<GroundTruth>,
}

/// A batch: images of different sizes stay apart.
#[derive(Debug)]
pub struct Batch {
    /// The images.
    pub images: Vec<Tensor>,
    /// Their targets.
    pub targets: Vec<Target>,
    /// Their ground truth for the metrics.
    pub truths: Vec<Vec<GroundTruth>>,
    /// Their indices in the data set.
    pub indices: Vec<usize>,
}

/// The data set for the loader.
pub struct NativeSizeDataset {
    items: Vec<DetectionItem>,
    augment: Option<SsdAugment>,
}

impl NativeSizeDataset {
    /// `items`, augmented by `augment` (`None` for evaluation).
    pub fn new(items: Vec<DetectionItem>, augment: Option<SsdAugment>) -> Self {
        NativeSizeDataset { items, augment }
    }

    /// The items.
    pub fn items(&self) -> &[DetectionItem] {
        &self.items
    }
}

impl Dataset for NativeSizeDataset {
    type Sample = Sample;
    type Batch = Batch;

    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize, _epoch: usize, rng: &mut Rng) -> ferrovis_data::Result<Sample> {
        let item = &self.items[index];
        let image = read_rgb(&item.path)?;
        let (w, h) = (image.width as f32, image.height as f32);
        let boxes = item
            .boxes
            .iter()
            .map(|b| {
                let [cx, cy, bw, bh] = b.cxcywh;
                BoxLabel {
                    class: b.class,
                    xyxy: [
                        (cx - bw / 2.0) * w,
                        (cy - bh / 2.0) * h,
                        (cx + bw / 2.0) * w,
                        (cy + bh / 2.0) * h,
                    ],
                }
            })
            .collect();
        let mut sample = DetectionSample { image, boxes };
        if let Some(augment) = &self.augment {
            sample = augment.apply(sample, rng)?;
        }
        let tensor = to_normalized_chw(&sample.image, [0.0; 3], [1.0; 3]);
        let mut boxes = Vec::with_capacity(sample.boxes.len() * 4);
        let mut labels = Vec::with_capacity(sample.boxes.len());
        let mut truths = Vec::with_capacity(sample.boxes.len());
        for b in &sample.boxes {
            let [x1, y1, x2, y2] = b.xyxy;
            // torchvision refuses boxes without area; the label scan keeps them, so they are
            // left out of the loss (and the metrics) here.
            if x2 - x1 <= 0.0 || y2 - y1 <= 0.0 {
                tracing::warn!(file = %item.path.display(), "a box without area is left out");
                continue;
            }
            boxes.extend([x1, y1, x2, y2]);
            labels.push(b.class as i64 + 1);
            truths.push(GroundTruth {
                bbox: [x1, y1, x2, y2],
                class: b.class,
            });
        }
        Ok(Sample {
            image: tensor,
            target: Target {
                boxes: Tensor::from_slice(&boxes)
                    .view([-1, 4])
                    .to_kind(Kind::Float),
                labels: Tensor::from_slice(&labels),
            },
            truths,
        })
    }

    fn collate(&self, samples: Vec<(usize, Sample)>) -> ferrovis_data::Result<Batch> {
        let mut batch = Batch {
            images: Vec::with_capacity(samples.len()),
            targets: Vec::with_capacity(samples.len()),
            truths: Vec::with_capacity(samples.len()),
            indices: Vec::with_capacity(samples.len()),
        };
        for (i, s) in samples {
            batch.images.push(s.image);
            batch.targets.push(s.target);
            batch.truths.push(s.truths);
            batch.indices.push(i);
        }
        Ok(batch)
    }

    fn source(&self, index: usize) -> Option<PathBuf> {
        self.items.get(index).map(|i| i.path.clone())
    }
}
