//! Inference on one image of any size: the whole image, resized and resized back, or sliding
//! windows whose overlapping logits are averaged; optional horizontal-flip test-time
//! augmentation. Validation and prediction share this, so `segment val` scores exactly what
//! `segment predict` writes.

use tch::{Kind, Tensor};

use crate::config::InferMode;
use crate::model::SegmentationModel;

/// How to run inference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InferOptions {
    /// Whole image, resize-back, or sliding window.
    pub mode: InferMode,
    /// Longer side for `Resize`; window side for `Slide`.
    pub size: usize,
    /// Average with the prediction of the mirrored image.
    pub flip: bool,
    /// Feed the network channels-last (its weights were laid out so).
    pub channels_last: bool,
}

fn logits(model: &SegmentationModel, x: &Tensor, opts: &InferOptions) -> Tensor {
    let run = |x: &Tensor| {
        let x = if opts.channels_last {
            ferrovis_core::memory_format::channels_last(x).unwrap_or_else(|_| x.shallow_clone())
        } else {
            x.shallow_clone()
        };
        model.forward_t(&x, false).out.contiguous()
    };
    if opts.flip {
        (run(x) + run(&x.flip([3])).flip([3])) / 2.0
    } else {
        run(x)
    }
}

/// Resizes `(N, C, H, W)` to `h`×`w` bilinearly, antialiased when shrinking (as the training
/// data's resize is).
fn resize(x: &Tensor, h: i64, w: i64) -> Tensor {
    let (xh, xw) = (x.size()[2], x.size()[3]);
    if (xh, xw) == (h, w) {
        x.shallow_clone()
    } else if h < xh || w < xw {
        Tensor::internal_upsample_bilinear2d_aa(x, [h, w], false, None, None)
    } else {
        x.upsample_bilinear2d([h, w], false, None, None)
    }
}

fn slide(model: &SegmentationModel, x: &Tensor, opts: &InferOptions) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let win = opts.size.max(32) as i64;
    let stride = (win * 2 / 3).max(1);
    // Images smaller than a window are padded (zeros = the mean colour after normalisation).
    let (ph, pw) = ((win - h).max(0), (win - w).max(0));
    let padded = if ph > 0 || pw > 0 {
        x.constant_pad_nd([0, pw, 0, ph])
    } else {
        x.shallow_clone()
    };
    let (hp, wp) = (h + ph, w + pw);
    let starts = |len: i64| -> Vec<i64> {
        let mut v: Vec<i64> = (0..)
            .map(|i| i * stride)
            .take_while(|s| s + win < len)
            .collect();
        v.push(len - win);
        v
    };
    let mut sum: Option<Tensor> = None;
    let count = Tensor::zeros([1, 1, hp, wp], (Kind::Float, x.device()));
    for &top in &starts(hp) {
        for &left in &starts(wp) {
            let crop = padded.narrow(2, top, win).narrow(3, left, win);
            let l = logits(model, &crop, opts);
            let acc = sum.get_or_insert_with(|| {
                Tensor::zeros(
                    [l.size()[0], l.size()[1], hp, wp],
                    (Kind::Float, x.device()),
                )
            });
            let _ = acc
                .narrow(2, top, win)
                .narrow(3, left, win)
                .g_add_(&l.to_kind(Kind::Float));
            let _ = count
                .narrow(2, top, win)
                .narrow(3, left, win)
                .g_add_scalar_(1.0);
        }
    }
    let sum = sum.unwrap_or_else(|| logits(model, &padded, opts));
    (sum / count).narrow(2, 0, h).narrow(3, 0, w)
}

/// Class probabilities `(N, C, H, W)` at the input's size for normalised images `(N, 3, H, W)`.
pub fn probabilities(model: &SegmentationModel, x: &Tensor, opts: &InferOptions) -> Tensor {
    tch::no_grad(|| {
        let (h, w) = (x.size()[2], x.size()[3]);
        let l = match opts.mode {
            InferMode::Whole => logits(model, x, opts),
            InferMode::Resize => {
                let scale = opts.size as f64 / h.max(w) as f64;
                let nh = ((h as f64 * scale).round() as i64).max(1);
                let nw = ((w as f64 * scale).round() as i64).max(1);
                let l = logits(model, &resize(x, nh, nw), opts);
                l.to_kind(Kind::Float)
                    .upsample_bilinear2d([h, w], false, None, None)
            }
            InferMode::Slide => slide(model, x, opts),
        };
        l.to_kind(Kind::Float).softmax(1, Kind::Float)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;
    use tch::Device;

    #[test]
    fn every_mode_returns_probabilities_at_the_image_size() {
        tch::manual_seed(1);
        let spec = ModelSpec {
            encoder: "resnet18".into(),
            num_classes: 3,
            ..Default::default()
        };
        let m = SegmentationModel::new(&spec, Device::Cpu).expect("build");
        let x = Tensor::randn([1, 3, 50, 90], (Kind::Float, Device::Cpu));
        for (mode, flip) in [
            (InferMode::Whole, false),
            (InferMode::Resize, true),
            (InferMode::Slide, false),
        ] {
            let opts = InferOptions {
                mode,
                size: 64,
                flip,
                channels_last: false,
            };
            let p = probabilities(&m, &x, &opts);
            assert_eq!(p.size(), vec![1, 3, 50, 90], "{mode:?}");
            let total = p.sum_dim_intlist(1, false, Kind::Float);
            assert!((total - 1.0).abs().max().double_value(&[]) < 1e-5);
        }
        // Flip TTA of a mirrored image is the mirror of its flip TTA.
        let opts = InferOptions {
            mode: InferMode::Whole,
            size: 0,
            flip: true,
            channels_last: false,
        };
        let a = probabilities(&m, &x, &opts);
        let b = probabilities(&m, &x.flip([3]), &opts).flip([3]);
        assert!((a - b).abs().max().double_value(&[]) < 1e-5);
    }
}
