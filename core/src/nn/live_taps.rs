//! Convolutions that skip the kernel taps which can only ever read padding.
//!
//! A dilated 3×3 convolution whose dilation reaches past the feature map — DeepLab's ASPP at
//! rate 36 (or 24) on a 32×32 map, DeepLabV3+'s rate 18 on a 16×16 map, i.e. training on
//! 256-pixel crops — multiplies its eight outer taps by zero padding at every position. Those
//! taps add exact zeros to the output and get exact-zero gradients, yet cost 8/9 of the
//! convolution. [`conv2d_live_taps`] runs the convolution with only the taps that reach the
//! input, the padding reduced to match, which gives the same output (up to summation order) and
//! the same gradients (zero for the skipped taps) for a fraction of the time.

use tch::nn::{self, Module};
use tch::Tensor;

use super::Conv2dSpec;

/// The taps of one axis that reach the input: `(first, count)`, or `None` when all of them do
/// or when the live taps are not centred (cropping them would change the output size).
fn live_range(
    kernel: i64,
    size: i64,
    stride: i64,
    padding: i64,
    dilation: i64,
) -> Option<(i64, i64)> {
    if kernel <= 1 || stride < 1 || dilation < 1 {
        return None;
    }
    let out = (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
    if out < 1 {
        return None;
    }
    // Tap t reads input rows o·stride − padding + t·dilation for o in [0, out): it is live when
    // that span meets [0, size).
    let live = |t: i64| {
        let first = -padding + t * dilation;
        let last = (out - 1) * stride - padding + t * dilation;
        first < size && last >= 0
    };
    let lo = (0..kernel).find(|&t| live(t))?;
    let hi = (0..kernel).rev().find(|&t| live(t))?;
    let centred = lo + hi == kernel - 1;
    if (lo == 0 && hi == kernel - 1) || !centred || lo * dilation > padding {
        return None;
    }
    Some((lo, hi - lo + 1))
}

/// `conv.forward(x)` for the convolution `conv` built from `spec`, with the kernel cropped to
/// the taps that reach `x` when some never do (see the module documentation).
pub fn conv2d_live_taps(conv: &nn::Conv2D, spec: &Conv2dSpec, x: &Tensor) -> Tensor {
    let (k, size) = (conv.ws.size(), x.size());
    if k.len() != 4 || size.len() != 4 {
        return conv.forward(x);
    }
    let (s, p, d) = (spec.stride, spec.padding, spec.dilation);
    let rows = live_range(k[2], size[2], s, p, d);
    let cols = live_range(k[3], size[3], s, p, d);
    if rows.is_none() && cols.is_none() {
        return conv.forward(x);
    }
    let (r0, rn) = rows.unwrap_or((0, k[2]));
    let (c0, cn) = cols.unwrap_or((0, k[3]));
    let weight = conv.ws.narrow(2, r0, rn).narrow(3, c0, cn);
    x.conv2d(
        &weight,
        conv.bs.as_ref(),
        [s, s],
        [p - r0 * d, p - c0 * d],
        [d, d],
        spec.groups,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn only_taps_that_reach_the_input_are_kept() {
        // 3×3, padding = dilation, stride 1 (ASPP): rate 36 on 32 rows keeps the centre only.
        assert_eq!(live_range(3, 32, 1, 36, 36), Some((1, 1)));
        assert_eq!(live_range(3, 32, 1, 32, 32), Some((1, 1)));
        // Rate 31 still reaches row 31 from row 0: every tap is live.
        assert_eq!(live_range(3, 32, 1, 31, 31), None);
        assert_eq!(live_range(3, 16, 1, 18, 18), Some((1, 1)));
        assert_eq!(live_range(3, 16, 1, 12, 12), None);
        // Undilated, on a 1-pixel map: the centre only.
        assert_eq!(live_range(3, 1, 1, 1, 1), Some((1, 1)));
        // 5×5 with dilation 8 on 10 rows: taps at −16 and +16 are dead, ±8 live.
        assert_eq!(live_range(5, 10, 1, 16, 8), Some((1, 3)));
        // No padding: every tap reads the input.
        assert_eq!(live_range(3, 5, 1, 0, 4), None);
        assert_eq!(live_range(1, 5, 1, 0, 1), None);
    }

    #[test]
    fn cropped_convolution_equals_the_full_one_with_its_gradients() {
        let vs = nn::VarStore::new(Device::Cpu);
        for (dilation, h, w) in [(36, 32, 32), (18, 16, 20), (24, 20, 40)] {
            let spec = Conv2dSpec::new(3).dilation(dilation).bias(true);
            let conv = super::super::conv2d(&(vs.root() / format!("c{dilation}")), 8, 6, spec);
            let x = Tensor::randn([2, 8, h, w], (Kind::Float, Device::Cpu));
            let full = conv.forward(&x);
            let full_grad = {
                full.sum(Kind::Float).backward();
                let g = conv.ws.grad().copy();
                let _ = conv.ws.grad().zero_();
                g
            };
            let live = conv2d_live_taps(&conv, &spec, &x);
            live.sum(Kind::Float).backward();
            assert_eq!(live.size(), full.size());
            let d = (&live - &full).abs().max().double_value(&[]);
            assert!(
                d < 1e-5,
                "dilation {dilation} {h}×{w}: outputs differ by {d}"
            );
            let dg = (conv.ws.grad() - &full_grad).abs().max().double_value(&[]);
            assert!(
                dg < 1e-3,
                "dilation {dilation}: weight gradients differ by {dg}"
            );
            // The skipped taps' gradients are exact zeros in both.
            if h <= dilation && w <= dilation {
                let corner = full_grad.narrow(2, 0, 1).narrow(3, 0, 1);
                assert_eq!(corner.abs().max().double_value(&[]), 0.0);
            }
        }
    }
}
