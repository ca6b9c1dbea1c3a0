//! Detection data sets: Ultralytics' dataset YAML with YOLO txt labels ([`yolo`]), Pascal VOC
//! XML ([`voc`]) and COCO JSON ([`coco`], also as a split of a dataset YAML). All give a [`DetectionData`]: images with normalised `(class, cx, cy, w, h)`
//! boxes, which [`DetectionDataset`] loads, augments (see
//! [`crate::transform::detect::DetectAugment`]) and batches.

pub mod coco;
pub mod voc;
pub mod yolo;

pub use coco::{coco_categories, scan_coco};
pub use voc::scan_voc;
pub use yolo::{label_path, parse_label_file, scan_yolo, DatasetYaml, LabelFile};

use std::path::PathBuf;
use std::sync::Arc;

use rand::Rng as _;
use tch::Tensor;

use super::report::ScanReport;
use crate::cache::Cache;
use crate::decode::read_rgb;
use crate::error::Result;
use crate::loader::Dataset;
use crate::rng::Rng;
use crate::tensor::to_normalized_chw;
use crate::transform::detect::{
    hflip_sample, letterbox, letterbox_rect, mosaic, rect_batch_shapes, resize_long_side,
    vflip_sample, BoxLabel, DetectAugment, DetectionSample, Letterbox, PAD_GREY,
};

/// A box normalised to the image size: centre and size in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YoloBox {
    /// Class index into the data set's names.
    pub class: usize,
    /// `[cx, cy, w, h]`, each in [0, 1].
    pub cxcywh: [f32; 4],
}

/// One image and its boxes (none: a background image).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionItem {
    /// The image file.
    pub path: PathBuf,
    /// Its boxes.
    pub boxes: Vec<YoloBox>,
}

/// A scanned detection split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectionData {
    /// Class names.
    pub names: Vec<String>,
    /// Usable images in a stable (sorted) order.
    pub items: Vec<DetectionItem>,
    /// What was skipped and why; label files without an image are notes here.
    pub report: ScanReport,
}

impl DetectionData {
    /// Total number of boxes.
    pub fn num_boxes(&self) -> usize {
        self.items.iter().map(|i| i.boxes.len()).sum()
    }

    /// Images with no boxes.
    pub fn num_background(&self) -> usize {
        self.items.iter().filter(|i| i.boxes.is_empty()).count()
    }

    /// Boxes per class.
    pub fn instances_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.names.len()];
        for b in self.items.iter().flat_map(|i| &i.boxes) {
            counts[b.class] += 1;
        }
        counts
    }
}

/// One loaded detection sample.
#[derive(Debug)]
pub struct DetectionTarget {
    /// `(3, size, size)` float image in [0, 1] (YOLO models take unnormalised RGB).
    pub image: Tensor,
    /// Boxes in the output image's pixels.
    pub boxes: Vec<BoxLabel>,
    /// How the output maps back to the original image (evaluation only; identity-like under
    /// mosaic/affine, which have no inverse worth keeping).
    pub letterbox: Letterbox,
    /// The original image's width and height.
    pub original_size: (usize, usize),
}

/// A detection batch.
#[derive(Debug)]
pub struct DetectionBatch {
    /// `(N, 3, size, size)` images in [0, 1].
    pub images: Tensor,
    /// `(M, 6)` rows `(batch index, class, cx, cy, w, h)`, box coordinates normalised to the image
    /// size: Ultralytics' target layout.
    pub targets: Tensor,
    /// Per image: boxes in pixels, letterbox and original size.
    pub info: Vec<DetectionTarget>,
    /// The sample index of each image.
    pub indices: Vec<usize>,
}

/// Decodes, augments and batches a [`DetectionData`] for the [`Loader`](crate::loader::Loader).
pub struct DetectionDataset {
    items: Vec<DetectionItem>,
    size: usize,
    augment: Option<DetectAugment>,
    cache: Option<Cache<Resized>>,
    /// Per image, the `(width, height)` of its rectangular batch (see [`with_rect_batches`]).
    ///
    /// [`with_rect_batches`]: DetectionDataset::with_rect_batches
    rect: Option<Vec<(usize, usize)>>,
}

impl DetectionDataset {
    /// Square `size` inputs; with `augment` None, images are only letterboxed (evaluation).
    pub fn new(items: Vec<DetectionItem>, size: usize, augment: Option<DetectAugment>) -> Self {
        Self {
            items,
            size,
            augment,
            cache: None,
            rect: None,
        }
    }

    /// Ultralytics' validation batches (evaluation only): the images sorted by aspect ratio
    /// (height / width, read from the file headers with EXIF orientation), and each batch of
    /// `batch` of them letterboxed into its own shape, a multiple of `stride` with half a stride
    /// of padding around the widest of them ([`rect_batch_shapes`]), instead of the `size`²
    /// square. Load with a sequential loader of the same batch size. An image whose header cannot
    /// be read counts as square here, and fails where it is loaded.
    pub fn with_rect_batches(mut self, batch: usize, stride: usize) -> Self {
        let ratio = |item: &DetectionItem| -> f64 {
            std::fs::read(&item.path)
                .ok()
                .and_then(|bytes| crate::decode::probe(&item.path, &bytes).ok())
                .map_or(1.0, |p| p.height as f64 / p.width as f64)
        };
        let mut keyed: Vec<(f64, DetectionItem)> =
            self.items.drain(..).map(|i| (ratio(&i), i)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ratios: Vec<f64> = keyed.iter().map(|(r, _)| *r).collect();
        self.items = keyed.into_iter().map(|(_, i)| i).collect();
        self.rect = Some(rect_batch_shapes(&ratios, batch, self.size, stride, 0.5));
        self
    }

    /// Keeps decoded images, resized so the longer side is `size`, in memory.
    pub fn with_cache(mut self) -> Self {
        self.cache = Some(Cache::new(self.items.len()));
        self
    }

    /// The items.
    pub fn items(&self) -> &[DetectionItem] {
        &self.items
    }

    /// The decoded image resized so its longer side is `size`, with its boxes in pixels.
    fn load(&self, index: usize) -> Result<Arc<Resized>> {
        let decode = || -> Result<Resized> {
            let item = &self.items[index];
            let image = read_rgb(&item.path)?;
            let original = (image.width, image.height);
            let (w, h) = (image.width as f32, image.height as f32);
            let boxes = item
                .boxes
                .iter()
                .map(|b| {
                    let [cx, cy, bw, bh] = b.cxcywh;
                    let xyxy = [
                        (cx - bw / 2.0) * w,
                        (cy - bh / 2.0) * h,
                        (cx + bw / 2.0) * w,
                        (cy + bh / 2.0) * h,
                    ];
                    BoxLabel {
                        class: b.class,
                        xyxy,
                    }
                })
                .collect();
            let sample = resize_long_side(&DetectionSample { image, boxes }, self.size)?;
            Ok(Resized { sample, original })
        };
        match &self.cache {
            Some(cache) => cache.get_or_load(index, decode),
            None => decode().map(Arc::new),
        }
    }
}

/// An image resized for the network, and the size it had on disk (after EXIF orientation).
#[derive(Debug)]
struct Resized {
    sample: DetectionSample,
    original: (usize, usize),
}

impl Dataset for DetectionDataset {
    type Sample = DetectionTarget;
    type Batch = DetectionBatch;

    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize, epoch: usize, rng: &mut Rng) -> Result<Self::Sample> {
        let loaded = self.load(index)?;
        let (resized, original) = (&loaded.sample, loaded.original);
        let s = self.size;
        let (mut sample, letterbox_info) = match &self.augment {
            None => {
                let (out, lb) = match self.rect.as_ref().and_then(|shapes| shapes.get(index)) {
                    Some(&(w, h)) => letterbox_rect(resized, w, h)?,
                    None => letterbox(resized, s, false)?,
                };
                let r = resized.image.width as f32 / original.0 as f32;
                (
                    out,
                    Letterbox {
                        scale: lb.scale * r,
                        ..lb
                    },
                )
            }
            Some(aug) => {
                let mosaic_on = aug.mosaic_off_from_epoch.is_none_or(|off| epoch < off);
                let mut out = if mosaic_on && aug.mosaic > 0.0 && rng.gen_bool(aug.mosaic.min(1.0))
                {
                    let others: Vec<Arc<Resized>> = (0..3)
                        .map(|_| self.load(rng.gen_range(0..self.items.len())))
                        .collect::<Result<_>>()?;
                    let m = mosaic(
                        [
                            resized,
                            &others[0].sample,
                            &others[1].sample,
                            &others[2].sample,
                        ],
                        s,
                        rng,
                    );
                    aug.affine.apply(&m, s / 2, rng)?
                } else {
                    let (boxed, _) = letterbox(resized, s, true)?;
                    aug.affine.apply(&boxed, 0, rng)?
                };
                aug.hsv.apply(&mut out.image, rng)?;
                if aug.flipud > 0.0 && rng.gen_bool(aug.flipud.min(1.0)) {
                    vflip_sample(&mut out);
                }
                if aug.fliplr > 0.0 && rng.gen_bool(aug.fliplr.min(1.0)) {
                    hflip_sample(&mut out);
                }
                let identity = Letterbox {
                    scale: 1.0,
                    pad_left: 0.0,
                    pad_top: 0.0,
                };
                (out, identity)
            }
        };
        sample.boxes.retain(|b| b.width() > 0.0 && b.height() > 0.0);
        let image = to_normalized_chw(&sample.image, [0.0; 3], [1.0; 3]);
        Ok(DetectionTarget {
            image,
            boxes: sample.boxes,
            letterbox: letterbox_info,
            original_size: original,
        })
    }

    fn collate(&self, samples: Vec<(usize, Self::Sample)>) -> Result<Self::Batch> {
        // Rectangular batches share one shape, unless a sharded loader mixed images of two
        // batches: those are padded (bottom and right, grey) to the largest, boxes unmoved.
        let height = samples
            .iter()
            .map(|(_, t)| t.image.size()[1])
            .max()
            .unwrap_or(0);
        let width = samples
            .iter()
            .map(|(_, t)| t.image.size()[2])
            .max()
            .unwrap_or(0);
        let (sw, sh) = (width as f32, height as f32);
        let mut rows = Vec::new();
        let mut images = Vec::with_capacity(samples.len());
        let mut info = Vec::with_capacity(samples.len());
        let mut indices = Vec::with_capacity(samples.len());
        for (b, (index, mut target)) in samples.into_iter().enumerate() {
            for bx in &target.boxes {
                let [x1, y1, x2, y2] = bx.xyxy;
                rows.extend_from_slice(&[
                    b as f32,
                    bx.class as f32,
                    (x1 + x2) / 2.0 / sw,
                    (y1 + y2) / 2.0 / sh,
                    (x2 - x1) / sw,
                    (y2 - y1) / sh,
                ]);
            }
            let image = std::mem::replace(&mut target.image, Tensor::new());
            let (h, w) = (image.size()[1], image.size()[2]);
            images.push(if (h, w) == (height, width) {
                image
            } else {
                let canvas = Tensor::full(
                    [3, height, width],
                    f64::from(PAD_GREY[0]) / 255.0,
                    (image.kind(), image.device()),
                );
                canvas.narrow(1, 0, h).narrow(2, 0, w).copy_(&image);
                canvas
            });
            info.push(target);
            indices.push(index);
        }
        Ok(DetectionBatch {
            images: Tensor::f_stack(&images, 0)?,
            targets: Tensor::from_slice(&rows).view([-1, 6]),
            info,
            indices,
        })
    }

    fn source(&self, index: usize) -> Option<PathBuf> {
        self.items.get(index).map(|i| i.path.clone())
    }
}
