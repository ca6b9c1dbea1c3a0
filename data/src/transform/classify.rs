//! Classification transforms: resize the shorter side, centre crop, torchvision's random resized
//! crop, and the train/eval pipelines built from them.

use std::path::Path;

use opencv::core::Size;
use opencv::imgproc;
use opencv::prelude::*;
use rand::Rng as _;
use tch::Tensor;

use super::color::ColorJitter;
use super::geometry::{crop, hflip, rot90, Rect};
use super::pillow_resize::{self, PillowFilter};
use crate::decode::{bgr_mat_to_rgb, decode_bgr, probe, read_bytes, rgb_from_mat};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::jpeg;
use crate::rng::Rng;
use crate::tensor::{to_normalized_chw, to_normalized_chw_mirrored};

/// The resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// OpenCV's area averaging when shrinking (every covered source pixel counts, by its
    /// coverage), bilinear when enlarging: the evaluation resize the ImageNet reference answers
    /// in `make validate` are reproduced with.
    Area,
    /// Pillow's bilinear (triangle) filter, widened with the shrink factor (antialiased), to
    /// the integer ([`pillow_resize`]): what torchvision's `Resize`/`RandomResizedCrop` do to
    /// PIL images.
    Bilinear,
    /// Pillow's bicubic filter (Catmull-Rom), antialiased the same way.
    Bicubic,
    /// OpenCV's bilinear interpolation (`INTER_LINEAR`, no antialiasing): what Ultralytics'
    /// letterbox resizes with.
    Linear,
}

/// Resizes `img` so its shorter side is `size`, keeping the aspect ratio; the longer side is
/// `floor(size · long / short)`, as torchvision's `Resize(size)` computes it.
pub fn resize_shorter(img: &RgbImage, size: usize, filter: Filter) -> Result<RgbImage> {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 || size == 0 {
        return Err(Error::image(
            "<image>",
            format!("cannot resize a {w}x{h} image to {size}"),
        ));
    }
    let (nw, nh) = if w <= h {
        (size, size * h / w)
    } else {
        (size * w / h, size)
    };
    resize(img, nw, nh, filter)
}

/// Resizes `img` to exactly `width`×`height`.
pub fn resize(img: &RgbImage, width: usize, height: usize, filter: Filter) -> Result<RgbImage> {
    if (width, height) == (img.width, img.height) {
        return Ok(img.clone());
    }
    if width == 0 || height == 0 || img.width == 0 || img.height == 0 {
        return Err(Error::Invalid(format!(
            "cannot resize a {}x{} image to {width}x{height}",
            img.width, img.height
        )));
    }
    match filter {
        Filter::Area => resize_opencv(img, width, height, true),
        Filter::Linear => resize_opencv(img, width, height, false),
        Filter::Bilinear => Ok(pillow_resize::resize(
            img,
            width,
            height,
            PillowFilter::Bilinear,
        )),
        Filter::Bicubic => Ok(pillow_resize::resize(
            img,
            width,
            height,
            PillowFilter::Bicubic,
        )),
    }
}

fn resize_opencv(img: &RgbImage, width: usize, height: usize, area: bool) -> Result<RgbImage> {
    let shrinking = width < img.width || height < img.height;
    let interpolation = if area && shrinking {
        imgproc::INTER_AREA
    } else {
        imgproc::INTER_LINEAR
    };
    // A borrowed view of the pixels: no copy on the way in.
    let flat = opencv::core::Mat::from_slice(&img.data)?;
    let src = flat.reshape(3, img.height as i32)?;
    let mut dst = opencv::core::Mat::default();
    imgproc::resize(
        &src,
        &mut dst,
        Size::new(width as i32, height as i32),
        0.0,
        0.0,
        interpolation,
    )?;
    rgb_from_mat(&dst)
}

/// Crops the central `size`×`size` square; offsets are `round((h − size) / 2)` as in torchvision
/// (Python's rounding: halves to even).
pub fn center_crop(img: &RgbImage, size: usize) -> Result<RgbImage> {
    if img.width < size || img.height < size {
        return Err(Error::image(
            "<image>",
            format!(
                "cannot centre-crop {size}x{size} from a {}x{} image",
                img.width, img.height
            ),
        ));
    }
    // Python's round, as torchvision's: halves to even (a 185-px margin leaves 92 on the left).
    let top = ((img.height - size) as f64 / 2.0).round_ties_even() as usize;
    let left = ((img.width - size) as f64 / 2.0).round_ties_even() as usize;
    let mut data = Vec::with_capacity(size * size * 3);
    for y in top..top + size {
        let row = (y * img.width + left) * 3;
        data.extend_from_slice(&img.data[row..row + size * 3]);
    }
    Ok(RgbImage {
        width: size,
        height: size,
        data,
    })
}

/// torchvision's `RandomResizedCrop` area and aspect-ratio ranges.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomResizedCrop {
    /// Range of the crop's area as a fraction of the image's.
    pub scale: (f64, f64),
    /// Range of the crop's width / height.
    pub ratio: (f64, f64),
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        Self {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

impl RandomResizedCrop {
    /// Draws a crop of a `width`×`height` image as torchvision's `get_params` does: up to 10
    /// attempts at a random area and log-uniform aspect ratio that fits, then a centre crop clamped
    /// to the ratio range.
    pub fn params(&self, width: usize, height: usize, rng: &mut Rng) -> Rect {
        let area = (width * height) as f64;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.gen_range(self.scale.0..=self.scale.1);
            let aspect = rng.gen_range(log_lo..=log_hi).exp();
            let w = (target * aspect).sqrt().round() as usize;
            let h = (target / aspect).sqrt().round() as usize;
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = rng.gen_range(0..=height - h);
                let left = rng.gen_range(0..=width - w);
                return Rect {
                    left,
                    top,
                    width: w,
                    height: h,
                };
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio.0 {
            (
                width,
                ((width as f64 / self.ratio.0).round() as usize).max(1),
            )
        } else if in_ratio > self.ratio.1 {
            (
                ((height as f64 * self.ratio.1).round() as usize).max(1),
                height,
            )
        } else {
            (width, height)
        };
        Rect {
            left: (width - w) / 2,
            top: (height - h) / 2,
            width: w,
            height: h,
        }
    }
}

/// A classification pipeline from a decoded image to a normalised `(3, size, size)` tensor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyTransform {
    /// Output side length.
    pub size: usize,
    /// Evaluation: the shorter side is resized to this (with [`filter`](Self::filter)) before
    /// the centre crop (torchvision's `Resize(256)`, `CenterCrop(224)`).
    pub resize: usize,
    /// Evaluation resize filter: [`Filter::Area`] by default; Pillow's bilinear or bicubic
    /// for a checkpoint whose configuration names it (timm's `create_transform` resizes PIL
    /// images), which also decodes JPEGs whole rather than at a reduced DCT scale.
    pub filter: Filter,
    /// Training: random resized crop (`None`: the evaluation resize + centre crop).
    pub random_resized_crop: Option<RandomResizedCrop>,
    /// Training: probability of a horizontal flip.
    pub hflip: f64,
    /// Training: a random quarter turn (0°, 90°, 180° or 270°, equally likely) after the flip,
    /// which with it gives all eight symmetries of the square; for images with no "up" (shapes,
    /// aerial or microscope images), as albumentations' `RandomRotate90`.
    pub rotate90: bool,
    /// Training: colour jitter.
    pub color_jitter: ColorJitter,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: [f64; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f64; 3],
}

impl Default for ClassifyTransform {
    fn default() -> Self {
        Self::eval(224)
    }
}

/// ImageNet channel means (RGB), torchvision's normalisation.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

impl ClassifyTransform {
    /// torchvision's evaluation preset: `Resize(size·256/224)`, `CenterCrop(size)`, ImageNet
    /// normalisation.
    pub fn eval(size: usize) -> Self {
        Self {
            size,
            resize: (size * 256).div_ceil(224),
            filter: Filter::Area,
            random_resized_crop: None,
            hflip: 0.0,
            rotate90: false,
            color_jitter: ColorJitter::default(),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// torchvision's training preset: `RandomResizedCrop(size)`, `RandomHorizontalFlip()`,
    /// ImageNet normalisation.
    pub fn train(size: usize) -> Self {
        Self {
            random_resized_crop: Some(RandomResizedCrop::default()),
            hflip: 0.5,
            ..Self::eval(size)
        }
    }

    /// True when the output depends on the random stream.
    pub fn is_random(&self) -> bool {
        self.random_resized_crop.is_some()
            || self.hflip > 0.0
            || self.rotate90
            || !self.color_jitter.is_identity()
    }

    /// Crops and resizes to `size`×`size` with the random parts drawn from `rng`.
    pub fn apply_image(&self, img: &RgbImage, rng: &mut Rng) -> Result<RgbImage> {
        let mut out = match &self.random_resized_crop {
            Some(rrc) => {
                let rect = rrc.params(img.width, img.height, rng);
                resize(&crop(img, rect)?, self.size, self.size, self.crop_filter())?
            }
            None => center_crop(&resize_shorter(img, self.resize, self.filter)?, self.size)?,
        };
        if self.hflip > 0.0 && rng.gen_bool(self.hflip.clamp(0.0, 1.0)) {
            hflip(&mut out);
        }
        let turns = self.quarter_turns(rng);
        if turns > 0 {
            out = rot90(&out, turns);
        }
        self.color_jitter.apply(&mut out, rng);
        Ok(out)
    }

    /// The filter of everything but the evaluation resize (the random resized crop, a cached
    /// image's reduction): torchvision's bilinear, or the checkpoint's Pillow filter where
    /// [`filter`](Self::filter) names one (timm trains with its configuration's).
    pub fn crop_filter(&self) -> Filter {
        match self.filter {
            Filter::Area | Filter::Linear => Filter::Bilinear,
            pillow => pillow,
        }
    }

    /// The quarter turns of [`rotate90`](Self::rotate90), drawn after the flip (0 when off,
    /// with nothing drawn).
    fn quarter_turns(&self, rng: &mut Rng) -> usize {
        if self.rotate90 {
            rng.gen_range(0..4usize)
        } else {
            0
        }
    }

    /// The pipeline straight from an encoded file, cheaper than decode + [`apply`](Self::apply)
    /// with the same random draws in the same order: the crop is drawn on the displayed size
    /// (read from the headers), a JPEG is decoded at the largest DCT scale (1/2, 1/4, 1/8) that
    /// still leaves the crop (or the evaluation resize) at full output resolution, as PIL's
    /// `draft` mode does, and the crop is resized straight out of the decoded buffer.
    pub fn apply_file(&self, path: &Path, rng: &mut Rng) -> Result<Tensor> {
        let bytes = read_bytes(path)?;
        let probe = probe(path, &bytes)?;
        let (w, h) = (probe.width, probe.height);
        let out = match &self.random_resized_crop {
            Some(rrc) => {
                let rect = rrc.params(w, h, rng);
                let region = if probe.jpeg && probe.orientation == 1 {
                    self.jpeg_region(path, &bytes, (w, h), rect)?
                } else {
                    None
                };
                let cropped = match region {
                    Some(img) => img,
                    None => crop(&bgr_mat_to_rgb(&decode_bgr(path, &bytes, 1)?)?, rect)?,
                };
                resize(&cropped, self.size, self.size, self.crop_filter())?
            }
            None => {
                // A reduced DCT scale is an area average already; Pillow's filters see every pixel.
                let factor = [8, 4, 2]
                    .into_iter()
                    .find(|&f| w / f >= self.resize && h / f >= self.resize)
                    .filter(|_| self.filter == Filter::Area)
                    .unwrap_or(1);
                let img = bgr_mat_to_rgb(&decode_bgr(path, &bytes, factor)?)?;
                center_crop(&resize_shorter(&img, self.resize, self.filter)?, self.size)?
            }
        };
        Ok(self.finish(out, rng))
    }

    /// The steps after the crop: the flip (drawn first, applied while converting, since colour
    /// jitter does not care where a pixel is), the quarter turn, colour jitter, normalisation.
    fn finish(&self, mut img: RgbImage, rng: &mut Rng) -> Tensor {
        let mut mirror = self.hflip > 0.0 && rng.gen_bool(self.hflip.clamp(0.0, 1.0));
        let turns = self.quarter_turns(rng);
        if turns > 0 {
            if mirror {
                hflip(&mut img);
                mirror = false;
            }
            img = rot90(&img, turns);
        }
        self.color_jitter.apply(&mut img, rng);
        if mirror {
            to_normalized_chw_mirrored(&img, self.mean, self.std)
        } else {
            to_normalized_chw(&img, self.mean, self.std)
        }
    }

    /// Decodes just `rect` of an upright JPEG, at the smallest DCT scale m/8 that keeps the crop
    /// at least `size` pixels on each side (so the final resize never enlarges what a full decode
    /// would not have); `None` for JPEGs libjpeg cannot give as RGB (CMYK).
    fn jpeg_region(
        &self,
        path: &Path,
        bytes: &[u8],
        (w, h): (usize, usize),
        rect: Rect,
    ) -> Result<Option<RgbImage>> {
        let m = (1..=8)
            .find(|m| rect.width * m / 8 >= self.size && rect.height * m / 8 >= self.size)
            .unwrap_or(8);
        let (sw, sh) = jpeg::scaled_size(w, h, m);
        let x0 = (rect.left * m / 8).min(sw - 1);
        let y0 = (rect.top * m / 8).min(sh - 1);
        let x1 = ((rect.left + rect.width) * m).div_ceil(8).clamp(x0 + 1, sw);
        let y1 = ((rect.top + rect.height) * m).div_ceil(8).clamp(y0 + 1, sh);
        jpeg::decode_region(path, bytes, m, (x0, y0, x1, y1))
    }

    /// The full pipeline: [`apply_image`](Self::apply_image), then the normalised CHW tensor.
    pub fn apply(&self, img: &RgbImage, rng: &mut Rng) -> Result<Tensor> {
        let out = self.apply_image(img, rng)?;
        Ok(to_normalized_chw(&out, self.mean, self.std))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_crop_offsets_round_like_torchvision() {
        // (7 - 4) / 2 = 1.5 rounds to 2 (banker's rounding in Python gives 2 as well).
        let c = center_crop(&RgbImage::numbered(7, 6, 7), 4).unwrap();
        assert_eq!((c.width, c.height), (4, 4));
        assert_eq!(c.pixel(0, 0), [2, 1, 7]);
        assert_eq!(c.pixel(3, 3), [5, 4, 7]);
        assert!(center_crop(&RgbImage::numbered(3, 3, 7), 4).is_err());
    }

    #[test]
    fn shorter_side_resize_keeps_aspect_with_floor() {
        // 451x300 -> shorter 256: long side floor(256 * 451 / 300) = 384.
        let r = resize_shorter(&RgbImage::numbered(451, 300, 7), 256, Filter::Bilinear).unwrap();
        assert_eq!((r.width, r.height), (384, 256));
        let r = resize_shorter(&RgbImage::numbered(100, 150, 7), 256, Filter::Bicubic).unwrap();
        assert_eq!((r.width, r.height), (256, 384));
        // Area shrinking of a constant image is exact.
        let flat = RgbImage::filled(90, 60, [10, 200, 30]);
        let r = resize_shorter(&flat, 20, Filter::Bilinear).unwrap();
        assert!(r.data.chunks(3).all(|p| p == [10, 200, 30]));
    }

    #[test]
    fn random_resized_crop_fits_and_falls_back_to_a_ratio_clamped_centre_crop() {
        let rrc = RandomResizedCrop::default();
        let mut rng = crate::rng::derive(5, &[]);
        for _ in 0..500 {
            let r = rrc.params(640, 480, &mut rng);
            assert!(r.left + r.width <= 640 && r.top + r.height <= 480);
            let area = (r.width * r.height) as f64 / (640.0 * 480.0);
            assert!((0.07..=1.0).contains(&area), "area {area}");
        }
        // A 1000x10 strip can never fit a crop of ratio <= 4/3 with area >= 8%: every attempt
        // fails and the fallback crops h = 10, w = round(10 * 4/3) = 13, centred.
        let r = RandomResizedCrop::default().params(1000, 10, &mut rng);
        assert_eq!(
            r,
            Rect {
                left: (1000 - 13) / 2,
                top: 0,
                width: 13,
                height: 10
            }
        );
    }

    #[test]
    fn eval_pipeline_gives_normalised_square_tensor() {
        let t = ClassifyTransform::eval(224);
        assert_eq!(t.resize, 256);
        let out = t
            .apply(
                &RgbImage::filled(500, 375, [124, 116, 104]),
                &mut crate::rng::derive(0, &[]),
            )
            .unwrap();
        assert_eq!(out.size(), [3, 224, 224]);
        let v = f64::try_from(out.abs().max()).unwrap();
        assert!(v < 0.01, "ImageNet-mean grey normalises to ~0, got {v}");
    }
}
