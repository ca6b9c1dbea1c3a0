//! torchvision's `GeneralizedRCNNTransform`: each image is normalised, resized so its short side
//! is `min_size` unless that makes the long side exceed `max_size`, and the batch is padded with
//! zeros to a common size that is a multiple of `size_divisible`. Target boxes follow the resize;
//! detections are mapped back to the original image by [`RcnnTransform::postprocess`]. SSD uses
//! it with a fixed output size instead (`fixed_size`: every image stretched to 300×300 or
//! 320×320) and no padding.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::targets::{Detections, Target};

/// The transform's settings (torchvision's defaults for Faster R-CNN: 800, 1333, ImageNet
/// statistics, 32).
#[derive(Debug, Clone, PartialEq)]
pub struct RcnnTransform {
    /// Short-side sizes; training draws one per image, evaluation uses the last.
    pub min_size: Vec<i64>,
    /// Longest side allowed after resizing.
    pub max_size: i64,
    /// Per-channel mean of the 0–1 input.
    pub mean: [f64; 3],
    /// Per-channel standard deviation of the 0–1 input.
    pub std: [f64; 3],
    /// The padded batch's height and width are multiples of this.
    pub size_divisible: i64,
    /// `(height, width)` every image is resized to, ignoring `min_size` and `max_size`
    /// (torchvision's `fixed_size`, given there as `(width, height)`).
    pub fixed_size: Option<(i64, i64)>,
}

impl RcnnTransform {
    /// Faster R-CNN's transform with `min_size` and `max_size` and ImageNet statistics.
    pub fn new(min_size: i64, max_size: i64) -> Self {
        RcnnTransform {
            min_size: vec![min_size],
            max_size,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            size_divisible: 32,
            fixed_size: None,
        }
    }

    /// SSD's transform: every image bilinearly resized to `(height, width)`, normalised by
    /// `mean` and `std`, no padding.
    pub fn fixed(size: (i64, i64), mean: [f64; 3], std: [f64; 3]) -> Self {
        RcnnTransform {
            min_size: vec![size.0.min(size.1)],
            max_size: size.0.max(size.1),
            mean,
            std,
            size_divisible: 1,
            fixed_size: Some(size),
        }
    }
}

/// A padded batch and where each image lies in it.
#[derive(Debug)]
pub struct ImageList {
    /// `(N, 3, H, W)`, each image at the top left, zeros elsewhere.
    pub tensors: Tensor,
    /// Each image's `(height, width)` after resizing, before padding.
    pub image_sizes: Vec<(i64, i64)>,
    /// Each image's `(height, width)` as given.
    pub original_sizes: Vec<(i64, i64)>,
}

impl RcnnTransform {
    /// The evaluation short side (the last `min_size`), which `results` and `detect.json`
    /// report as the detector's input size.
    pub fn input_size(&self) -> usize {
        self.min_size.last().copied().unwrap_or(800) as usize
    }

    /// Normalises, resizes and batches `images` (each `(3, H, W)`, float, 0–1); with `targets`,
    /// returns their boxes resized alike. In training (`train`), each image's short side is drawn
    /// from `min_size` with libtorch's generator, one draw per image as torchvision makes it.
    pub fn apply(
        &self,
        images: &[Tensor],
        targets: Option<&[Target]>,
        train: bool,
    ) -> Result<(ImageList, Option<Vec<Target>>)> {
        if images.is_empty() {
            bail!("images: expected at least one image");
        }
        if self.min_size.is_empty()
            || self
                .min_size
                .iter()
                .chain([&self.max_size])
                .any(|&s| s <= 0)
        {
            bail!(
                "transform: min_size {:?} and max_size {} must be positive (one min_size at least)",
                self.min_size,
                self.max_size
            );
        }
        if let Some(t) = targets {
            if t.len() != images.len() {
                bail!("targets: {} for {} images", t.len(), images.len());
            }
        }
        let mut resized = Vec::with_capacity(images.len());
        let mut out_targets = targets.map(|_| Vec::with_capacity(images.len()));
        let mut original_sizes = Vec::with_capacity(images.len());
        for (i, image) in images.iter().enumerate() {
            let size = image.size();
            if size.len() != 3 || size[0] != 3 || !image.is_floating_point() {
                bail!(
                    "images[{i}]: expected a float (3, H, W) tensor in 0–1, got {:?} of {size:?}",
                    image.kind()
                );
            }
            let (h, w) = (size[1], size[2]);
            original_sizes.push((h, w));
            let normalised = self.normalize(image);
            let short = if train {
                self.choose_min_size()
            } else {
                *self.min_size.last().unwrap_or(&800)
            };
            let image = match self.fixed_size {
                Some(size) => resize_to(&normalised, size),
                None => resize(&normalised, short, self.max_size),
            };
            let (nh, nw) = (image.size()[1], image.size()[2]);
            if let (Some(out), Some(t)) = (out_targets.as_mut(), targets) {
                out.push(Target {
                    boxes: resize_boxes(&t[i].boxes, (h, w), (nh, nw)),
                    labels: t[i].labels.shallow_clone(),
                });
            }
            resized.push(image);
        }
        let image_sizes = resized.iter().map(|t| (t.size()[1], t.size()[2])).collect();
        Ok((
            ImageList {
                tensors: self.batch_images(&resized),
                image_sizes,
                original_sizes,
            },
            out_targets,
        ))
    }

    /// Detections in resized coordinates back to each original image.
    pub fn postprocess(&self, detections: Vec<Detections>, images: &ImageList) -> Vec<Detections> {
        detections
            .into_iter()
            .zip(images.image_sizes.iter().zip(&images.original_sizes))
            .map(|(d, (&resized, &original))| Detections {
                boxes: resize_boxes(&d.boxes, resized, original),
                ..d
            })
            .collect()
    }

    fn normalize(&self, image: &Tensor) -> Tensor {
        let opts = (image.kind(), image.device());
        let mean = Tensor::from_slice(&self.mean)
            .to_kind(opts.0)
            .to_device(opts.1);
        let std = Tensor::from_slice(&self.std)
            .to_kind(opts.0)
            .to_device(opts.1);
        (image - mean.view([3, 1, 1])) / std.view([3, 1, 1])
    }

    /// torchvision's `torch_choice`: a uniform draw on libtorch's generator picks the index.
    fn choose_min_size(&self) -> i64 {
        let n = self.min_size.len();
        let u = Tensor::empty([1], (Kind::Float, Device::Cpu))
            .uniform_(0.0, n as f64)
            .double_value(&[0]);
        self.min_size[(u as usize).min(n - 1)]
    }

    fn batch_images(&self, images: &[Tensor]) -> Tensor {
        let d = self.size_divisible as f64;
        let round_up = |v: i64| ((v as f64 / d).ceil() * d) as i64;
        let h = round_up(images.iter().map(|t| t.size()[1]).max().unwrap_or(0));
        let w = round_up(images.iter().map(|t| t.size()[2]).max().unwrap_or(0));
        let first = &images[0];
        let batch = Tensor::zeros(
            [images.len() as i64, 3, h, w],
            (first.kind(), first.device()),
        );
        for (i, img) in images.iter().enumerate() {
            let (ih, iw) = (img.size()[1], img.size()[2]);
            batch
                .get(i as i64)
                .narrow(1, 0, ih)
                .narrow(2, 0, iw)
                .copy_(img);
        }
        batch
    }
}

/// Bilinear resize (no corner alignment) by `min(short / min(h, w), max_size / max(h, w))`, the
/// output size floored as `F.interpolate(scale_factor, recompute_scale_factor=True)` floors it.
fn resize(image: &Tensor, short: i64, max_size: i64) -> Tensor {
    let (h, w) = (image.size()[1], image.size()[2]);
    let scale = (short as f64 / h.min(w) as f64).min(max_size as f64 / h.max(w) as f64);
    let (oh, ow) = (
        (h as f64 * scale).floor() as i64,
        (w as f64 * scale).floor() as i64,
    );
    image
        .unsqueeze(0)
        .upsample_bilinear2d([oh, ow], false, None, None)
        .squeeze_dim(0)
}

/// Bilinear resize (no corner alignment) to exactly `(height, width)`.
fn resize_to(image: &Tensor, size: (i64, i64)) -> Tensor {
    image
        .unsqueeze(0)
        .upsample_bilinear2d([size.0, size.1], false, None, None)
        .squeeze_dim(0)
}

/// torchvision's `resize_boxes`: x scaled by the width ratio, y by the height ratio, in float.
pub fn resize_boxes(boxes: &Tensor, from: (i64, i64), to: (i64, i64)) -> Tensor {
    let ratio_h = to.0 as f32 / from.0 as f32;
    let ratio_w = to.1 as f32 / from.1 as f32;
    let ratios = Tensor::from_slice(&[ratio_w, ratio_h, ratio_w, ratio_h])
        .to_device(boxes.device())
        .to_kind(boxes.kind());
    boxes * ratios.view([1, 4])
}
