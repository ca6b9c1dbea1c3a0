//! Image ↔ tensor conversion: HWC `u8` RGB to normalised CHW `f32`.
//!
//! The arithmetic is plain Rust rather than libtorch ops: it runs inside the loader's worker
//! threads, where libtorch's own thread pool would oversubscribe the cores.

use tch::Tensor;

use crate::image::{Mask, RgbImage};

/// Converts an image to a `(3, H, W)` float tensor: `(pixel / 255 − mean) / std` per channel.
pub fn to_normalized_chw(img: &RgbImage, mean: [f64; 3], std: [f64; 3]) -> Tensor {
    let plane = img.width * img.height;
    let mut out = vec![0f32; plane * 3];
    let scale = std.map(|s| (1.0 / (255.0 * s)) as f32);
    let shift = [0, 1, 2].map(|c| (mean[c] / std[c]) as f32);
    // One contiguous output plane per channel keeps the writes sequential.
    for (c, dst) in out.chunks_exact_mut(plane).enumerate() {
        for (d, px) in dst.iter_mut().zip(img.data.chunks_exact(3)) {
            *d = px[c] as f32 * scale[c] - shift[c];
        }
    }
    Tensor::from_slice(&out).view([3, img.height as i64, img.width as i64])
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
    fn masks_become_int64_class_maps() {
        let mut m = Mask::filled(3, 2, 0);
        m.set(2, 1, 255);
        let t = mask_to_tensor(&m);
        assert_eq!(t.size(), [2, 3]);
        assert_eq!(t.kind(), tch::Kind::Int64);
        assert_eq!(t.int64_value(&[1, 2]), 255);
    }
}
