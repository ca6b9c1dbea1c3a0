//! Image ↔ tensor conversion: HWC `u8` RGB to normalised CHW `f32`.
//!
//! The arithmetic is plain Rust rather than libtorch ops: it runs inside the loader's worker
//! threads, where libtorch's own thread pool would oversubscribe the cores.

use tch::Tensor;

use crate::image::{Mask, RgbImage};

/// Converts an image to a `(3, H, W)` float tensor: `(pixel / 255 − mean) / std` per channel.
pub fn to_normalized_chw(img: &RgbImage, mean: [f64; 3], std: [f64; 3]) -> Tensor {
    normalized_chw(img, false, mean, std)
}

/// [`to_normalized_chw`], mirrored left to right on the way (cheaper than flipping first).
pub fn to_normalized_chw_mirrored(img: &RgbImage, mean: [f64; 3], std: [f64; 3]) -> Tensor {
    normalized_chw(img, true, mean, std)
}

fn normalized_chw(img: &RgbImage, mirror: bool, mean: [f64; 3], std: [f64; 3]) -> Tensor {
    let (w, h) = (img.width, img.height);
    let plane = w * h;
    let mut out = vec![0f32; plane * 3];
    let scale = std.map(|s| (1.0 / (255.0 * s)) as f32);
    let shift = [0, 1, 2].map(|c| (mean[c] / std[c]) as f32);
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for y in 0..h {
        let src = &img.data[y * w * 3..(y + 1) * w * 3];
        let row = y * w..(y + 1) * w;
        let (r, g, b) = (&mut r[row.clone()], &mut g[row.clone()], &mut b[row]);
        for x in 0..w {
            let sx = if mirror { w - 1 - x } else { x };
            let p = &src[sx * 3..sx * 3 + 3];
            r[x] = p[0] as f32 * scale[0] - shift[0];
            g[x] = p[1] as f32 * scale[1] - shift[1];
            b[x] = p[2] as f32 * scale[2] - shift[2];
        }
    }
    Tensor::from_slice(&out).view([3, h as i64, w as i64])
}

/// Converts a mask to a `(H, W)` `int64` tensor of class indices (what cross-entropy takes).
pub fn mask_to_tensor(mask: &Mask) -> Tensor {
    let values: Vec<i64> = mask.data.iter().map(|&v| v as i64).collect();
    Tensor::from_slice(&values).view([mask.height as i64, mask.width as i64])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_each_channel() {
        let img = RgbImage::filled(2, 1, [255, 0, 51]);
        let t = to_normalized_chw(&img, [0.5, 0.0, 0.2], [0.5, 1.0, 0.1]);
        assert_eq!(t.size(), [3, 1, 2]);
        let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        // (1 - .5)/.5 = 1; (0 - 0)/1 = 0; (0.2 - 0.2)/0.1 = 0
        for (got, want) in v.iter().zip([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{v:?}");
        }
    }

    #[test]
    fn mirrored_conversion_equals_flip_then_convert() {
        let mut img = RgbImage::filled(5, 3, [0, 0, 0]);
        for y in 0..3 {
            for x in 0..5 {
                img.set_pixel(x, y, [x as u8 * 40, y as u8 * 50, 7]);
            }
        }
        let mut flipped = img.clone();
        crate::transform::geometry::hflip(&mut flipped);
        let m = [0.4, 0.5, 0.6];
        let a = to_normalized_chw(&flipped, m, m);
        let b = to_normalized_chw_mirrored(&img, m, m);
        assert!(a.equal(&b));
    }

    #[test]
    fn masks_become_int64_class_maps() {
        let mut m = Mask::filled(3, 2, 0);
        m.set(2, 1, 255);
        let t = mask_to_tensor(&m);
        assert_eq!(t.size(), [2, 3]);
        assert_eq!(t.kind(), tch::Kind::Int64);
        assert_eq!(t.int64_value(&[1, 2]), 255);
    }
}
