//! The blocks both DeepLabs are built from: Conv-BN-ReLU at torchvision's `Sequential`
//! positions (core's [`ConvNormAct`]) and atrous spatial pyramid pooling.

use ferrovis_core::nn::{Activation, Conv2dSpec, ConvNormAct};
use tch::nn::Path;
use tch::Tensor;

/// Convolution without bias (at `conv`) → BatchNorm (at `bn`) → ReLU, `k`×`k` with `dilation`
/// and the size kept, initialised as PyTorch initialises a fresh `nn.Conv2d` (torchvision's
/// heads keep that initialisation).
pub fn conv_bn_relu(
    conv: &Path,
    bn: &Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    dilation: i64,
) -> ConvNormAct {
    let spec = Conv2dSpec::new(k).dilation(dilation).pytorch_default_init();
    ConvNormAct::at(conv, bn, c_in, c_out, spec, Activation::ReLU, 1e-5, 0.1)
}

/// Atrous spatial pyramid pooling (`classifier.0`).
#[derive(Debug)]
pub struct Aspp {
    branches: Vec<ConvNormAct>,
    pooling: ConvNormAct,
    project: ConvNormAct,
    dropout: f64,
}

impl Aspp {
    /// `c_in` → 256 channels with 3×3 branches at `rates`; `dropout` after the projection.
    pub fn new(p: &Path, c_in: i64, rates: [i64; 3], dropout: f64) -> Self {
        let convs = p / "convs";
        let mut branches = vec![conv_bn_relu(
            &(&convs / 0 / 0),
            &(&convs / 0 / 1),
            c_in,
            256,
            1,
            1,
        )];
        for (i, r) in rates.iter().enumerate() {
            let b = &convs / (i + 1);
            branches.push(conv_bn_relu(&(&b / 0), &(&b / 1), c_in, 256, 3, *r));
        }
        // Image pooling: `convs.4` is Sequential(AdaptiveAvgPool2d, Conv, BN, ReLU).
        let pool = &convs / 4;
        Aspp {
            branches,
            pooling: conv_bn_relu(&(&pool / 1), &(&pool / 2), c_in, 256, 1, 1),
            project: conv_bn_relu(
                &(p / "project" / 0),
                &(p / "project" / 1),
                5 * 256,
                256,
                1,
                1,
            ),
            dropout,
        }
    }

    /// The five branches concatenated, projected, dropout when training.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let mut outs: Vec<Tensor> = self
            .branches
            .iter()
            .map(|b| b.forward_t(x, train))
            .collect();
        // AdaptiveAvgPool2d(1). In training it is written as ATen computes it on the CPU (a sum
        // divided by the pixel count) so the values are the same, and its backward pass hands
        // the branch's gradient on as a broadcast view instead of writing a feature-map-sized
        // tensor; in evaluation it is the pooling itself, which a traced ONNX export with free
        // sizes can compute (the pixel count is a number read off the input).
        let mean = if train {
            x.sum_dim_intlist([2i64, 3].as_slice(), true, x.kind()) / (h * w) as f64
        } else {
            x.adaptive_avg_pool2d([1, 1])
        };
        let pooled =
            self.pooling
                .forward_t(&mean, train)
                .upsample_bilinear2d([h, w], false, None, None);
        outs.push(pooled);
        self.project
            .forward_t(&Tensor::cat(&outs, 1), train)
            .dropout(self.dropout, train)
    }
}
