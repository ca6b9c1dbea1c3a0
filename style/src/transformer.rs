//! The image transformation network of Johnson, Alahi & Fei-Fei ("Perceptual Losses for Real-Time
//! Style Transfer", 2016) with instance normalisation (Ulyanov et al.): three reflection-padded
//! convolutions down (9×9, then two 3×3 at stride 2), five residual blocks at 128 channels, two
//! nearest-upsampling 3×3 convolutions up, a 9×9 convolution to RGB.
//!
//! Names follow the PyTorch examples' `TransformerNet` state dict (`conv1.conv2d.weight`,
//! `in1.weight`, `res1.conv1.conv2d.weight`, `deconv1.conv2d.weight`, …), so its checkpoints
//! load by name. Images are RGB in [0, 1] in and out; inside, the network works on the 0–255
//! scale the PyTorch examples train on, so their checkpoints also give the same pixels (their
//! first convolution's bias and the output's range depend on that scale).

use tch::nn::{self, Module, Path};
use tch::Tensor;

/// A convolution after reflection padding `k/2`, optionally upsampling (nearest) first.
#[derive(Debug)]
struct ConvLayer {
    conv: nn::Conv2D,
    pad: i64,
    upsample: Option<i64>,
}

impl ConvLayer {
    fn new(p: &Path, c_in: i64, c_out: i64, k: i64, stride: i64, upsample: Option<i64>) -> Self {
        let cfg = nn::ConvConfig {
            stride,
            ..Default::default()
        };
        ConvLayer {
            conv: nn::conv2d(p / "conv2d", c_in, c_out, k, cfg),
            pad: k / 2,
            upsample,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = match self.upsample {
            Some(f) => {
                let (h, w) = (x.size()[2], x.size()[3]);
                x.upsample_nearest2d([h * f, w * f], None, None)
            }
            None => x.shallow_clone(),
        };
        let p = self.pad;
        self.conv.forward(&x.reflection_pad2d([p, p, p, p]))
    }
}

/// Instance normalisation with a learned scale and shift (no running statistics).
#[derive(Debug)]
struct InstanceNorm {
    weight: Tensor,
    bias: Tensor,
}

impl InstanceNorm {
    fn new(p: &Path, c: i64) -> Self {
        InstanceNorm {
            weight: p.ones("weight", &[c]),
            bias: p.zeros("bias", &[c]),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.instance_norm(
            Some(&self.weight),
            Some(&self.bias),
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.1,
            1e-5,
            false,
        )
    }
}

/// conv-IN-ReLU-conv-IN plus the input.
#[derive(Debug)]
struct ResidualBlock {
    conv1: ConvLayer,
    in1: InstanceNorm,
    conv2: ConvLayer,
    in2: InstanceNorm,
}

impl ResidualBlock {
    fn new(p: &Path, c: i64) -> Self {
        ResidualBlock {
            conv1: ConvLayer::new(&(p / "conv1"), c, c, 3, 1, None),
            in1: InstanceNorm::new(&(p / "in1"), c),
            conv2: ConvLayer::new(&(p / "conv2"), c, c, 3, 1, None),
            in2: InstanceNorm::new(&(p / "in2"), c),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        // In place on the norms' fresh outputs: neither the norm's backward pass nor the
        // addition's needs them (a pass over memory and a tensor saved per block).
        let y = self.in1.forward(&self.conv1.forward(x)).relu_();
        let mut out = self.in2.forward(&self.conv2.forward(&y));
        out += x;
        out
    }
}

/// The VarStore prefix of the output convolution.
pub const OUTPUT_LAYER: &str = "deconv3";

/// Learning-rate factor for the output convolution: its weights act on the 0–255 scale, so
/// this makes Adam's steps the size they would be on a [0, 1] scale (the rest of the network
/// sits behind instance normalisation, where the pixel scale does not matter).
pub const OUTPUT_LR_SCALE: f64 = 255.0;

/// The transformation network.
#[derive(Debug)]
pub struct TransformerNet {
    down: Vec<(ConvLayer, InstanceNorm)>,
    res: Vec<ResidualBlock>,
    up: Vec<(ConvLayer, InstanceNorm)>,
    out: ConvLayer,
}

impl TransformerNet {
    /// Builds the network under `p` (the VarStore root).
    pub fn new(p: &Path) -> Self {
        let pair = |conv: &str, norm: &str, c_in, c_out, k, s, up| {
            (
                ConvLayer::new(&(p / conv), c_in, c_out, k, s, up),
                InstanceNorm::new(&(p / norm), c_out),
            )
        };
        TransformerNet {
            down: vec![
                pair("conv1", "in1", 3, 32, 9, 1, None),
                pair("conv2", "in2", 32, 64, 3, 2, None),
                pair("conv3", "in3", 64, 128, 3, 2, None),
            ],
            res: (1..=5)
                .map(|i| ResidualBlock::new(&(p / format!("res{i}")), 128))
                .collect(),
            up: vec![
                pair("deconv1", "in4", 128, 64, 3, 1, Some(2)),
                pair("deconv2", "in5", 64, 32, 3, 1, Some(2)),
            ],
            out: Self::output_layer(p),
        }
    }

    /// The last convolution, initialised so that a fresh network's output on the 0–255 scale
    /// is what the default initialisation gives on a [0, 1] scale, around mid-grey: from the
    /// default (output ≈ 0, black) Adam needs hundreds of steps just to grow the output's
    /// range. Train it with [`OUTPUT_LR_SCALE`] for the same reason.
    fn output_layer(p: &Path) -> ConvLayer {
        let out = ConvLayer::new(&(p / OUTPUT_LAYER), 32, 3, 9, 1, None);
        tch::no_grad(|| {
            let _ = out.conv.ws.shallow_clone().g_mul_scalar_(255.0);
            if let Some(b) = &out.conv.bs {
                let _ = b.shallow_clone().g_mul_scalar_(255.0).g_add_scalar_(127.5);
            }
        });
        out
    }

    /// Stylised images `(N, 3, H', W')` for images `(N, 3, H, W)` in [0, 1]; `H'`, `W'` equal
    /// `H`, `W` when they are multiples of 4.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x * 255.0;
        // ReLU in place on the norm's output, as in the residual blocks.
        for (conv, norm) in &self.down {
            y = norm.forward(&conv.forward(&y)).relu_();
        }
        for block in &self.res {
            y = block.forward(&y);
        }
        for (conv, norm) in &self.up {
            y = norm.forward(&conv.forward(&y)).relu_();
        }
        self.out.forward(&y) / 255.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn shape_and_names_follow_the_pytorch_example() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = TransformerNet::new(&vs.root());
        let x = Tensor::rand([2, 3, 64, 48], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| net.forward(&x));
        assert_eq!(y.size(), vec![2, 3, 64, 48]);
        let vars = vs.variables();
        for name in [
            "conv1.conv2d.weight",
            "in1.weight",
            "res5.in2.bias",
            "deconv1.conv2d.weight",
            "in5.weight",
            "deconv3.conv2d.bias",
        ] {
            assert!(vars.contains_key(name), "{name}");
        }
        // The layer list gives 7,872 + 18,624 + 74,112 (down) + 5 × 295,680 (residual)
        // + 73,920 + 18,528 + 7,779 (up) = 1,679,235 parameters.
        let n: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(n, 1_679_235);
    }
}
