//! The VGG19 relu3_1 encoder and its decoder from LinearStyleTransfer (`vgg_r31.pth`,
//! `dec_r31.pth`), with their own names (`conv1` … `conv6`, `conv7` … `conv11`) so the files
//! load as they are.
//!
//! Encoder: `conv1` is a 1×1 convolution taking RGB in [0, 1] to the Caffe VGG's input (BGR
//! minus the mean, 0–255 scale); then VGG19's conv1_1 (`conv2`), conv1_2 (`conv3`), max-pool,
//! conv2_1 (`conv4`), conv2_2 (`conv5`), max-pool, conv3_1 (`conv6`), each 3×3 with reflection
//! padding 1 and a ReLU. Decoder: `conv7` (256→128), nearest ×2, `conv8`, `conv9` (128→64),
//! nearest ×2, `conv10`, `conv11` (64→3, no activation), reflection padding 1 throughout.

use tch::nn::{self, Module, Path};
use tch::Tensor;

fn conv(p: &Path, name: &str, c_in: i64, c_out: i64, k: i64) -> nn::Conv2D {
    nn::conv2d(p / name, c_in, c_out, k, Default::default())
}

/// A 3×3 convolution after reflection padding 1.
fn reflect_conv(c: &nn::Conv2D, x: &Tensor) -> Tensor {
    c.forward(&x.reflection_pad2d([1, 1, 1, 1]))
}

/// The encoder up to relu3_1.
#[derive(Debug)]
pub struct EncoderR31 {
    /// `conv1` … `conv6`.
    convs: [nn::Conv2D; 6],
}

/// The activations the encoder exposes, in order, with VGG's names.
pub const ENCODER_LAYERS: [&str; 12] = [
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1", "conv2_2",
    "relu2_2", "pool2", "conv3_1", "relu3_1",
];

impl EncoderR31 {
    /// Builds the encoder under `p` (the checkpoint's root).
    pub fn new(p: &Path) -> Self {
        EncoderR31 {
            convs: [
                conv(p, "conv1", 3, 3, 1),
                conv(p, "conv2", 3, 64, 3),
                conv(p, "conv3", 64, 64, 3),
                conv(p, "conv4", 64, 128, 3),
                conv(p, "conv5", 128, 128, 3),
                conv(p, "conv6", 128, 256, 3),
            ],
        }
    }

    /// The named activations (see [`ENCODER_LAYERS`]) of RGB images in [0, 1], in the order
    /// asked; the encoder runs only as deep as needed.
    pub fn activations(&self, x: &Tensor, wanted: &[String]) -> Vec<Tensor> {
        let deepest = wanted
            .iter()
            .filter_map(|w| ENCODER_LAYERS.iter().position(|l| l == w))
            .max()
            .unwrap_or(0);
        let mut taps: Vec<(&str, Tensor)> = Vec::new();
        let mut y = self.convs[0].forward(x);
        let pool = |t: &Tensor| t.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        let mut layer = 0;
        for (i, c) in self.convs[1..].iter().enumerate() {
            y = reflect_conv(c, &y);
            taps.push((ENCODER_LAYERS[layer], y.shallow_clone()));
            y = y.relu();
            taps.push((ENCODER_LAYERS[layer + 1], y.shallow_clone()));
            layer += 2;
            if layer > deepest {
                break;
            }
            if i == 1 || i == 3 {
                y = pool(&y);
                taps.push((ENCODER_LAYERS[layer], y.shallow_clone()));
                layer += 1;
            }
        }
        wanted
            .iter()
            .filter_map(|w| {
                taps.iter()
                    .find(|(n, _)| n == w)
                    .map(|(_, t)| t.shallow_clone())
            })
            .collect()
    }

    /// relu3_1 features.
    pub fn encode(&self, x: &Tensor) -> Tensor {
        let mut out = self.activations(x, &["relu3_1".to_string()]);
        out.pop().expect("relu3_1 is always computed")
    }
}

/// The decoder from relu3_1 features back to an RGB image (about [0, 1]).
#[derive(Debug)]
pub struct DecoderR31 {
    /// `conv7` … `conv11`.
    convs: [nn::Conv2D; 5],
}

impl DecoderR31 {
    /// Builds the decoder under `p` (the checkpoint's root).
    pub fn new(p: &Path) -> Self {
        DecoderR31 {
            convs: [
                conv(p, "conv7", 256, 128, 3),
                conv(p, "conv8", 128, 128, 3),
                conv(p, "conv9", 128, 64, 3),
                conv(p, "conv10", 64, 64, 3),
                conv(p, "conv11", 64, 3, 3),
            ],
        }
    }

    /// relu3_1 features → image.
    pub fn decode(&self, f: &Tensor) -> Tensor {
        let up = |t: &Tensor| {
            let (h, w) = (t.size()[2], t.size()[3]);
            t.upsample_nearest2d([2 * h, 2 * w], None, None)
        };
        let c = &self.convs;
        let y = up(&reflect_conv(&c[0], f).relu());
        let y = reflect_conv(&c[2], &reflect_conv(&c[1], &y).relu()).relu();
        let y = reflect_conv(&c[3], &up(&y)).relu();
        reflect_conv(&c[4], &y)
    }
}
