//! TensorFlow's "SAME" padding, which EfficientNet-Lite weights were trained with: the output has
//! `ceil(size / stride)` pixels and, when the total padding is odd, the extra pixel goes to the
//! bottom/right (PyTorch's symmetric padding would shift every feature map by half a pixel).

use tch::Tensor;

/// Pads `(N, C, H, W)` so a `kernel`×`kernel` convolution with `stride` and `dilation` gives
/// TensorFlow's "SAME" output size.
pub fn pad_same(x: &Tensor, kernel: i64, stride: i64, dilation: i64) -> Tensor {
    let size = x.size();
    let (h, w) = (size[2], size[3]);
    let total = |n: i64| {
        (((n + stride - 1) / stride - 1) * stride + (kernel - 1) * dilation + 1 - n).max(0)
    };
    let (ph, pw) = (total(h), total(w));
    if ph == 0 && pw == 0 {
        return x.shallow_clone();
    }
    x.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn extra_pixel_goes_bottom_right() {
        // 224 with k3 s2: out 112, total pad = (111*2 + 3) - 224 = 1 -> (0 top, 1 bottom).
        let x = Tensor::ones([1, 1, 224, 224], (Kind::Float, Device::Cpu));
        let y = pad_same(&x, 3, 2, 1);
        assert_eq!(y.size(), [1, 1, 225, 225]);
        assert_eq!(y.double_value(&[0, 0, 0, 0]), 1.0);
        assert_eq!(y.double_value(&[0, 0, 224, 224]), 0.0);
        // k5 s1: total 4 -> 2 each side.
        let y = pad_same(&x, 5, 1, 1);
        assert_eq!(y.size(), [1, 1, 228, 228]);
        assert_eq!(y.double_value(&[0, 0, 1, 1]), 0.0);
        assert_eq!(y.double_value(&[0, 0, 2, 2]), 1.0);
    }
}
