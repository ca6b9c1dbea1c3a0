//! Image ↔ tensor conversion: HWC `u8` RGB to normalised CHW `f32`.

use tch::{Device, Kind, Tensor};

use crate::image::RgbImage;

/// Converts an image to a `(3, H, W)` float tensor: `(pixel / 255 − mean) / std` per channel.
pub fn to_normalized_chw(img: &RgbImage, mean: [f64; 3], std: [f64; 3]) -> Tensor {
    let hwc = Tensor::from_slice(&img.data).view([img.height as i64, img.width as i64, 3]);
    let chw = hwc.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0;
    let mean = Tensor::from_slice(&mean.map(|m| m as f32)).view([3, 1, 1]);
    let std = Tensor::from_slice(&std.map(|s| s as f32)).view([3, 1, 1]);
    ((chw - mean) / std).to_device(Device::Cpu)
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
        assert_eq!(v, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
