//! Pillow's convolution resampling (`Image.resize` with `BILINEAR` or `BICUBIC`), to the integer:
//! what torchvision's `Resize` and timm's `create_transform` do to PIL images, so a
//! checkpoint's preprocessing gives the pixels its authors trained and evaluated on.
//!
//! The published algorithm (Pillow's `Resample.c`): each output pixel averages the input pixels
//! under a filter widened by the shrink factor (antialiasing), weights normalised to sum 1 and
//! rounded to fixed point with 22 fractional bits; a horizontal pass, rounded and clipped to
//! 8 bits, then a vertical pass over its rows.

use crate::image::RgbImage;

/// Fractional bits of the fixed-point weights (32 − 8 − 2, as Pillow).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A resampling filter: its support (half-width) at scale 1 and its kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PillowFilter {
    /// The triangle filter, support 1.
    Bilinear,
    /// Keys' cubic with a = −0.5, support 2.
    Bicubic,
}

impl PillowFilter {
    fn support(self) -> f64 {
        match self {
            PillowFilter::Bilinear => 1.0,
            PillowFilter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            PillowFilter::Bilinear => (1.0 - x).max(0.0),
            PillowFilter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// For each output position, the first input index and the fixed-point weights of the inputs
/// from there on.
struct Coefficients {
    taps: Vec<(usize, Vec<i32>)>,
}

impl Coefficients {
    fn new(in_size: usize, out_size: usize, filter: PillowFilter) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = filter.support() * filter_scale;
        // Pillow multiplies by the reciprocal (one rounding) rather than dividing.
        let inverse_scale = 1.0 / filter_scale;
        let taps = (0..out_size)
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                // C's truncating casts, clamped to the image.
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                let raw: Vec<f64> = (xmin..xmax.max(xmin))
                    .map(|x| filter.weight((x as f64 - center + 0.5) * inverse_scale))
                    .collect();
                let total: f64 = raw.iter().sum();
                let fixed = raw
                    .iter()
                    .map(|&w| {
                        let w = if total != 0.0 { w / total } else { w };
                        let scaled = w * (1i64 << PRECISION_BITS) as f64;
                        // Rounded half away from zero, as Pillow's `(int)(±0.5 + w·2^22)`.
                        (if scaled < 0.0 {
                            scaled - 0.5
                        } else {
                            scaled + 0.5
                        }) as i32
                    })
                    .collect();
                (xmin, fixed)
            })
            .collect();
        Coefficients { taps }
    }

    /// The input rows (or columns) any output reads: `first..end`.
    fn span(&self) -> (usize, usize) {
        let first = self.taps.first().map_or(0, |(s, _)| *s);
        let end = self.taps.last().map_or(0, |(s, k)| s + k.len());
        (first, end)
    }
}

/// Pillow's rounding of an accumulated sum (which starts at one half) back to 8 bits.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `img` resized to `width`×`height` as Pillow resizes an RGB image with `filter`.
pub fn resize(img: &RgbImage, width: usize, height: usize, filter: PillowFilter) -> RgbImage {
    let horizontal = Coefficients::new(img.width, width, filter);
    let vertical = Coefficients::new(img.height, height, filter);
    let half = 1i64 << (PRECISION_BITS - 1);
    // The horizontal pass over only the rows the vertical pass reads, as Pillow does.
    let (row0, row_end) = if height != img.height {
        vertical.span()
    } else {
        (0, img.height)
    };
    let temp: Vec<u8> = if width != img.width {
        let mut out = Vec::with_capacity((row_end - row0) * width * 3);
        for y in row0..row_end {
            let row = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
            for (start, k) in &horizontal.taps {
                // The taps' pixels, three channels at a time.
                let pixels = row[start * 3..(start + k.len()) * 3].chunks_exact(3);
                let mut sum = [half; 3];
                for (px, &w) in pixels.zip(k) {
                    for c in 0..3 {
                        sum[c] += px[c] as i64 * w as i64;
                    }
                }
                out.extend(sum.map(clip8));
            }
        }
        out
    } else {
        img.data[row0 * img.width * 3..row_end * img.width * 3].to_vec()
    };
    if height == img.height {
        return RgbImage {
            width,
            height,
            data: temp,
        };
    }
    let stride = width * 3;
    let mut data = Vec::with_capacity(height * stride);
    // Whole rows at a time: each tap's row scaled into one accumulator row.
    let mut acc = vec![0i64; stride];
    for (start, k) in &vertical.taps {
        acc.fill(half);
        for (i, &w) in k.iter().enumerate() {
            let first = (start - row0 + i) * stride;
            for (a, &v) in acc.iter_mut().zip(&temp[first..first + stride]) {
                *a += v as i64 * w as i64;
            }
        }
        data.extend(acc.iter().map(|&a| clip8(a)));
    }
    RgbImage {
        width,
        height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point_and_flat_images_stay_flat() {
        for filter in [PillowFilter::Bilinear, PillowFilter::Bicubic] {
            for (n, m) in [(1000, 7), (7, 1000), (451, 256), (10, 10)] {
                let c = Coefficients::new(n, m, filter);
                for (_, k) in &c.taps {
                    let sum: i64 = k.iter().map(|&w| w as i64).sum();
                    assert!(
                        (sum - (1 << PRECISION_BITS)).abs() <= k.len() as i64,
                        "{sum}"
                    );
                }
            }
            let flat = RgbImage {
                width: 37,
                height: 23,
                data: vec![200; 37 * 23 * 3],
            };
            let out = resize(&flat, 11, 50, filter);
            assert_eq!((out.width, out.height), (11, 50));
            assert!(out.data.iter().all(|&v| v == 200));
        }
    }

    #[test]
    fn upsampling_interpolates_between_neighbours() {
        // 2 → 4 bilinear: centres at 0.25, 0.75, … of the input: ¾·a + ¼·b etc., edges clamp.
        let img = RgbImage {
            width: 2,
            height: 1,
            data: vec![0, 0, 0, 200, 200, 200],
        };
        let out = resize(&img, 4, 1, PillowFilter::Bilinear);
        let red: Vec<u8> = out.data.iter().step_by(3).copied().collect();
        assert_eq!(red, vec![0, 50, 150, 200]);
    }
}
