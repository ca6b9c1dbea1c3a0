//! Photometric augmentation: torchvision's `ColorJitter` and YOLO-style HSV gains.

use opencv::core::Mat;
use opencv::imgproc;
use rand::seq::SliceRandom;
use rand::Rng as _;

use crate::decode::{rgb_from_mat, rgb_mat};
use crate::error::Result;
use crate::image::RgbImage;
use crate::rng::Rng;

/// Random brightness, contrast, saturation and hue, applied in a random order, as torchvision's
/// `ColorJitter`: each factor is drawn from `[max(0, 1 − x), 1 + x]` (hue: a shift in `[−x, x]`
/// of a full turn, `x ≤ 0.5`); zero disables that part.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColorJitter {
    /// Brightness spread.
    pub brightness: f32,
    /// Contrast spread.
    pub contrast: f32,
    /// Saturation spread.
    pub saturation: f32,
    /// Hue shift spread, at most 0.5.
    pub hue: f32,
}

impl ColorJitter {
    /// True when every part is disabled.
    pub fn is_identity(&self) -> bool {
        self.brightness == 0.0 && self.contrast == 0.0 && self.saturation == 0.0 && self.hue == 0.0
    }

    /// Applies a random jitter in place.
    pub fn apply(&self, img: &mut RgbImage, rng: &mut Rng) {
        if self.is_identity() {
            return;
        }
        let factor = |rng: &mut Rng, x: f32| {
            if x > 0.0 {
                Some(rng.gen_range((1.0 - x).max(0.0)..=1.0 + x))
            } else {
                None
            }
        };
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let b = factor(rng, self.brightness);
        let c = factor(rng, self.contrast);
        let s = factor(rng, self.saturation);
        let h = (self.hue > 0.0).then(|| rng.gen_range(-self.hue.min(0.5)..=self.hue.min(0.5)));
        let mut px: Vec<f32> = img.data.iter().map(|&v| v as f32).collect();
        for op in order {
            match (op, b, c, s, h) {
                (0, Some(f), ..) => px.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 255.0)),
                (1, _, Some(f), ..) => {
                    let mean = px.chunks_exact(3).map(gray).sum::<f32>() / (px.len() / 3) as f32;
                    px.iter_mut()
                        .for_each(|v| *v = (*v * f + mean * (1.0 - f)).clamp(0.0, 255.0));
                }
                (2, _, _, Some(f), _) => {
                    for p in px.chunks_exact_mut(3) {
                        let g = gray(p);
                        p.iter_mut()
                            .for_each(|v| *v = (*v * f + g * (1.0 - f)).clamp(0.0, 255.0));
                    }
                }
                (3, .., Some(shift)) => px.chunks_exact_mut(3).for_each(|p| shift_hue(p, shift)),
                _ => {}
            }
        }
        for (dst, v) in img.data.iter_mut().zip(px) {
            *dst = v.round() as u8;
        }
    }
}

/// ITU-R 601 luma, the weights torchvision's `rgb_to_grayscale` uses.
fn gray(p: &[f32]) -> f32 {
    0.2989 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// Rotates the hue of one pixel (values 0–255) by `shift` turns.
fn shift_hue(p: &mut [f32], shift: f32) {
    let (r, g, b) = (p[0] / 255.0, p[1] / 255.0, p[2] / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    if delta <= 0.0 {
        return; // grey: hue is undefined and a shift changes nothing
    }
    let h = if max == r {
        ((g - b) / delta).rem_euclid(6.0)
    } else if max == g {
        (b - r) / delta + 2.0
    } else {
        (r - g) / delta + 4.0
    } / 6.0;
    let h = (h + shift).rem_euclid(1.0) * 6.0;
    let (s, v) = (delta / max, max);
    let i = h.floor();
    let f = h - i;
    let (pp, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match i as i32 % 6 {
        0 => (v, t, pp),
        1 => (q, v, pp),
        2 => (pp, v, t),
        3 => (pp, q, v),
        4 => (t, pp, v),
        _ => (v, pp, q),
    };
    p[0] = r * 255.0;
    p[1] = g * 255.0;
    p[2] = b * 255.0;
}

/// YOLO-style colour augmentation: hue, saturation and value are each multiplied by a gain drawn
/// from `1 ± x` (Ultralytics' `hsv_h`, `hsv_s`, `hsv_v`: 0.015, 0.7, 0.4 by default), hue on
/// OpenCV's 0–180 circle, the others clipped to 0–255.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HsvGain {
    /// Hue gain spread.
    pub h: f32,
    /// Saturation gain spread.
    pub s: f32,
    /// Value gain spread.
    pub v: f32,
}

impl Default for HsvGain {
    fn default() -> Self {
        Self {
            h: 0.015,
            s: 0.7,
            v: 0.4,
        }
    }
}

impl HsvGain {
    /// Applies random gains in place.
    pub fn apply(&self, img: &mut RgbImage, rng: &mut Rng) -> Result<()> {
        if self.h == 0.0 && self.s == 0.0 && self.v == 0.0 {
            return Ok(());
        }
        let gains = [self.h, self.s, self.v].map(|x| rng.gen_range(-1.0f32..=1.0) * x + 1.0);
        let lut_h: Vec<u8> = (0..256)
            .map(|x| ((x as f32 * gains[0]) as i32).rem_euclid(180) as u8)
            .collect();
        let lut_sv = |g: f32| -> Vec<u8> {
            (0..256)
                .map(|x| (x as f32 * g).clamp(0.0, 255.0) as u8)
                .collect()
        };
        let (lut_s, lut_v) = (lut_sv(gains[1]), lut_sv(gains[2]));
        let mut hsv = Mat::default();
        imgproc::cvt_color_def(&rgb_mat(img)?, &mut hsv, imgproc::COLOR_RGB2HSV)?;
        let mut hsv_img = rgb_from_mat(&hsv)?;
        for p in hsv_img.data.chunks_exact_mut(3) {
            p[0] = lut_h[p[0] as usize];
            p[1] = lut_s[p[1] as usize];
            p[2] = lut_v[p[2] as usize];
        }
        let mut rgb = Mat::default();
        imgproc::cvt_color_def(&rgb_mat(&hsv_img)?, &mut rgb, imgproc::COLOR_HSV2RGB)?;
        *img = rgb_from_mat(&rgb)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive;

    #[test]
    fn hue_shift_of_a_half_turn_maps_red_to_cyan() {
        let mut p = [255.0, 0.0, 0.0];
        shift_hue(&mut p, 0.5);
        assert!(
            (p[0] - 0.0).abs() < 1e-3 && (p[1] - 255.0).abs() < 1e-3 && (p[2] - 255.0).abs() < 1e-3
        );
        let mut grey = [90.0, 90.0, 90.0];
        shift_hue(&mut grey, 0.3);
        assert_eq!(grey, [90.0, 90.0, 90.0]);
    }

    #[test]
    fn brightness_only_jitter_scales_pixels_within_its_range() {
        let jitter = ColorJitter {
            brightness: 0.5,
            ..Default::default()
        };
        for i in 0..20 {
            let mut img = RgbImage::filled(4, 4, [100, 40, 200]);
            jitter.apply(&mut img, &mut derive(1, &[i]));
            let f = img.data[0] as f32 / 100.0;
            assert!((0.49..=1.51).contains(&f), "factor {f}");
            // One factor for every channel: the green channel moved by the same ratio.
            assert!((img.data[1] as f32 - 40.0 * f).abs() <= 1.0);
        }
    }

    #[test]
    fn zero_saturation_factor_gives_grey() {
        let jitter = ColorJitter {
            saturation: 1.0,
            ..Default::default()
        };
        // Find a draw with a saturation factor near zero: the pixel ends near its own luma.
        let mut greyest = f32::MAX;
        for i in 0..200 {
            let mut img = RgbImage::filled(1, 1, [200, 20, 20]);
            jitter.apply(&mut img, &mut derive(2, &[i]));
            let p = img.pixel(0, 0).map(|v| v as f32);
            greyest = greyest.min((p[0] - p[1]).abs().max((p[1] - p[2]).abs()));
        }
        assert!(greyest < 5.0);
    }

    #[test]
    fn hsv_gain_of_zero_is_identity_and_value_gain_darkens_or_brightens() {
        let mut img = RgbImage::filled(3, 3, [10, 120, 240]);
        let before = img.clone();
        HsvGain {
            h: 0.0,
            s: 0.0,
            v: 0.0,
        }
        .apply(&mut img, &mut derive(0, &[]))
        .unwrap();
        assert_eq!(img, before);
        let gain = HsvGain {
            h: 0.0,
            s: 0.0,
            v: 0.4,
        };
        let mut seen = (false, false);
        for i in 0..30 {
            let mut img = before.clone();
            gain.apply(&mut img, &mut derive(3, &[i])).unwrap();
            let max = *img.data.iter().max().unwrap() as f32;
            assert!((240.0 * 0.6 - 2.0..=255.0).contains(&max));
            seen.0 |= max < 230.0;
            seen.1 |= max > 250.0;
        }
        assert!(seen.0 && seen.1);
    }
}
