//! Segmentation transforms: the image and its mask move together. Images are interpolated, masks
//! always use nearest-neighbour so their values stay class indices (or 255, "ignore").

use rand::Rng as _;

use super::classify::{resize, Filter};
use super::geometry::{
    crop, crop_mask, hflip, hflip_mask, pad, pad_mask, resize_mask, rot90, rot90_mask, Rect,
};
use crate::error::{Error, Result};
use crate::image::{Mask, RgbImage};
use crate::rng::Rng;

/// The mask value that losses and metrics ignore.
pub const IGNORE_INDEX: u8 = 255;

/// An image with its per-pixel class mask.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationSample {
    /// The image.
    pub image: RgbImage,
    /// Its mask, the same size.
    pub mask: Mask,
}

impl SegmentationSample {
    /// Pairs an image and a mask, refusing different sizes.
    pub fn new(image: RgbImage, mask: Mask) -> Result<Self> {
        if (image.width, image.height) != (mask.width, mask.height) {
            return Err(Error::Invalid(format!(
                "mask is {}x{} but its image is {}x{}",
                mask.width, mask.height, image.width, image.height
            )));
        }
        Ok(Self { image, mask })
    }
}

/// Resizes image (antialiased bilinear) and mask (nearest) to `width`×`height`.
pub fn resize_sample(
    sample: &SegmentationSample,
    width: usize,
    height: usize,
) -> Result<SegmentationSample> {
    Ok(SegmentationSample {
        image: resize(&sample.image, width, height, Filter::Bilinear)?,
        mask: resize_mask(&sample.mask, width, height)?,
    })
}

/// Scales both by a factor drawn uniformly from `range`.
pub fn random_scale(
    sample: &SegmentationSample,
    range: (f32, f32),
    rng: &mut Rng,
) -> Result<SegmentationSample> {
    let f = if range.0 < range.1 {
        rng.gen_range(range.0..=range.1)
    } else {
        range.0
    };
    let w = ((sample.image.width as f32 * f).round() as usize).max(1);
    let h = ((sample.image.height as f32 * f).round() as usize).max(1);
    resize_sample(sample, w, h)
}

/// Pads (image with 0, mask with 255 so padding is ignored) up to at least `width`×`height`
/// on the bottom/right, then takes a random `width`×`height` crop.
pub fn pad_and_random_crop(
    sample: &SegmentationSample,
    width: usize,
    height: usize,
    rng: &mut Rng,
) -> Result<SegmentationSample> {
    let (w, h) = (sample.image.width, sample.image.height);
    let (pw, ph) = (width.saturating_sub(w), height.saturating_sub(h));
    let (image, mask) = if pw > 0 || ph > 0 {
        (
            pad(&sample.image, 0, 0, pw, ph, [0, 0, 0]),
            pad_mask(&sample.mask, 0, 0, pw, ph, IGNORE_INDEX),
        )
    } else {
        (sample.image.clone(), sample.mask.clone())
    };
    let rect = Rect {
        left: rng.gen_range(0..=image.width - width),
        top: rng.gen_range(0..=image.height - height),
        width,
        height,
    };
    Ok(SegmentationSample {
        image: crop(&image, rect)?,
        mask: crop_mask(&mask, rect)?,
    })
}

/// Mirrors both left to right.
pub fn hflip_sample(sample: &mut SegmentationSample) {
    hflip(&mut sample.image);
    hflip_mask(&mut sample.mask);
}

/// The usual training augmentation: random scale, pad-and-crop to `size`, horizontal flip (and,
/// when asked, a quarter turn).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentAugment {
    /// Output side length.
    pub size: usize,
    /// Range of the random scale factor.
    pub scale: (f32, f32),
    /// Probability of a horizontal flip.
    pub hflip: f64,
    /// A random quarter turn after the flip (image and mask alike), for images with no "up".
    pub rotate90: bool,
}

impl Default for SegmentAugment {
    fn default() -> Self {
        Self {
            size: 512,
            scale: (0.5, 2.0),
            hflip: 0.5,
            rotate90: false,
        }
    }
}

impl SegmentAugment {
    /// Applies the augmentation.
    pub fn apply(&self, sample: &SegmentationSample, rng: &mut Rng) -> Result<SegmentationSample> {
        let scaled = random_scale(sample, self.scale, rng)?;
        let mut out = pad_and_random_crop(&scaled, self.size, self.size, rng)?;
        if self.hflip > 0.0 && rng.gen_bool(self.hflip.clamp(0.0, 1.0)) {
            hflip_sample(&mut out);
        }
        if self.rotate90 {
            let turns = rng.gen_range(0..4usize);
            if turns > 0 {
                out.image = rot90(&out.image, turns);
                out.mask = rot90_mask(&out.mask, turns);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive;

    fn striped(w: usize, h: usize) -> SegmentationSample {
        let mut image = RgbImage::filled(w, h, [0, 0, 0]);
        let mut mask = Mask::filled(w, h, 0);
        for y in 0..h {
            for x in 0..w {
                let class = (x * 3 / w) as u8; // three vertical bands 0, 1, 2
                mask.set(x, y, class);
                image.set_pixel(x, y, [class * 100, 50, 50]);
            }
        }
        SegmentationSample::new(image, mask).unwrap()
    }

    #[test]
    fn scaled_masks_keep_only_class_values() {
        let s = striped(60, 40);
        for i in 0..20 {
            let out = random_scale(&s, (0.3, 2.7), &mut derive(4, &[i])).unwrap();
            assert_eq!(
                (out.mask.width, out.mask.height),
                (out.image.width, out.image.height)
            );
            assert!(out.mask.data.iter().all(|&v| v <= 2));
        }
    }

    #[test]
    fn padding_is_black_in_the_image_and_ignored_in_the_mask() {
        let s = striped(30, 20);
        let out = pad_and_random_crop(&s, 40, 40, &mut derive(1, &[])).unwrap();
        // Nothing to crop away: the original sits top-left, padding right and below.
        assert_eq!(out.mask.get(29, 19), 2);
        assert_eq!(out.mask.get(30, 0), IGNORE_INDEX);
        assert_eq!(out.mask.get(0, 20), IGNORE_INDEX);
        assert_eq!(out.image.pixel(35, 35), [0, 0, 0]);
        // Image and mask stay aligned after random crops and flips.
        let aug = SegmentAugment {
            size: 24,
            scale: (0.8, 1.5),
            hflip: 0.5,
            rotate90: true,
        };
        for i in 0..20 {
            let out = aug.apply(&striped(60, 40), &mut derive(2, &[i])).unwrap();
            for (p, &m) in out.image.data.chunks(3).zip(&out.mask.data) {
                if m != IGNORE_INDEX {
                    // Bilinear edges may blend neighbours; the red channel stays within one band.
                    assert!(
                        (p[0] as i32 - m as i32 * 100).abs() <= 100,
                        "pixel {p:?} mask {m}"
                    );
                }
            }
        }
        assert!(
            SegmentationSample::new(RgbImage::filled(3, 3, [0; 3]), Mask::filled(3, 4, 0)).is_err()
        );
    }
}
