//! U-Net (Ronneberger et al., 2015) on a pretrained encoder, with the decoder of
//! segmentation_models.pytorch: the encoder's pyramid (strides 2…32) is decoded from the coarsest
//! level up; each decoder block upsamples (nearest) to its skip's size, concatenates the skip and
//! applies two 3×3 Conv-BN-ReLU; the last block has no skip and doubles the size back to the input;
//! a 3×3 convolution gives the class logits. Encoders whose pyramid starts at stride 4 (ConvNeXt,
//! Swin) have no stride-2 skip: that block only doubles the size, as smp does for such encoders.
//!
//! Variables are named as smp's state dict: `encoder.*` (the torchvision names of the backbone,
//! without its classifier), `decoder.blocks.<i>.conv{1,2}.{0,1}.*`, `segmentation_head.0.*`.

use ferrovis_core::backbone::{self, Backbone, BackboneOptions};
use ferrovis_core::nn::{Activation, Conv2dSpec, ConvNormAct};
use tch::nn::{self, Module, Path};
use tch::Tensor;

/// The decoder's channels, coarsest block first (smp's default).
pub const DECODER_CHANNELS: [i64; 5] = [256, 128, 64, 32, 16];

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct UnetConfig {
    /// Encoder name as in [`ferrovis_core::backbone::NAMES`] (e.g. `resnet34`, `mobilenet_v2`).
    pub encoder: String,
    /// Output classes (1 for a binary mask of logits).
    pub num_classes: i64,
}

/// smp's `Conv2dReLU`: a 3×3 convolution without bias (`<p>.0`), BatchNorm (`<p>.1`), ReLU,
/// initialised as PyTorch initialises a fresh `nn.Conv2d`.
fn conv_bn_relu(p: &Path, c_in: i64, c_out: i64) -> ConvNormAct {
    let spec = Conv2dSpec::new(3).pytorch_default_init();
    ConvNormAct::new(p, c_in, c_out, spec, Activation::ReLU, 1e-5, 0.1)
}

/// One decoder stage: upsample, concatenate the skip, two Conv-BN-ReLU.
#[derive(Debug)]
pub struct DecoderBlock {
    conv1: ConvNormAct,
    conv2: ConvNormAct,
}

impl DecoderBlock {
    fn new(p: &Path, c_in: i64, c_skip: i64, c_out: i64) -> Self {
        DecoderBlock {
            conv1: conv_bn_relu(&(p / "conv1"), c_in + c_skip, c_out),
            conv2: conv_bn_relu(&(p / "conv2"), c_out, c_out),
        }
    }

    /// `x` upsampled to the skip's size (or doubled without one), then the two convolutions.
    pub fn forward_t(&self, x: &Tensor, skip: Option<&Tensor>, train: bool) -> Tensor {
        let (h, w) = match skip {
            Some(s) => (s.size()[2], s.size()[3]),
            None => (2 * x.size()[2], 2 * x.size()[3]),
        };
        let up = x.upsample_nearest2d([h, w], None, None);
        let x = match skip {
            Some(s) => Tensor::cat(&[up, s.shallow_clone()], 1),
            None => up,
        };
        self.conv2
            .forward_t(&self.conv1.forward_t(&x, train), train)
    }
}

/// U-Net: encoder, decoder blocks, segmentation head.
#[derive(Debug)]
pub struct Unet {
    /// The pretrained encoder (built without a classifier).
    pub encoder: Box<dyn Backbone>,
    /// The encoder level each decoder block concatenates (`None`: it only upsamples).
    skip_levels: Vec<Option<usize>>,
    blocks: Vec<DecoderBlock>,
    head: nn::Conv2D,
    /// What was built.
    pub config: UnetConfig,
}

impl Unet {
    /// Builds the model under `p` (the VarStore root).
    pub fn new(p: &Path, config: UnetConfig) -> ferrovis_core::Result<Self> {
        // An encoder (num_classes 0): torchvision's names, no classifier parameters.
        let encoder = backbone::create(
            &config.encoder,
            &(p / "encoder"),
            &BackboneOptions::classes(0),
        )?;
        let info = encoder.feature_info();
        let strides: Vec<i64> = info.iter().map(|f| f.stride).collect();
        if info.len() < 3 || strides.last() != Some(&32) {
            return Err(ferrovis_core::Error::Invalid(format!(
                "{}: a U-Net needs a feature pyramid ending at stride 32, and this encoder's \
                 levels are at strides {strides:?}{}",
                config.encoder,
                if info.len() == 1 {
                    " (a plain Vision Transformer has a single scale; choose a hierarchical \
                     encoder such as swin_t or convnext_tiny)"
                } else {
                    ""
                }
            )));
        }
        // The coarsest level is the decoder's input; block i reads the skip at stride 16 >> i
        // (none where the encoder has no such level, and none for the last block).
        let skip_levels: Vec<Option<usize>> = (0..DECODER_CHANNELS.len())
            .map(|i| {
                let stride = 16 >> i;
                (stride >= 2)
                    .then(|| strides.iter().rposition(|&s| s == stride))
                    .flatten()
            })
            .collect();
        let mut c_in = info[info.len() - 1].channels;
        let skip_channels: Vec<i64> = skip_levels
            .iter()
            .map(|l| l.map_or(0, |l| info[l].channels))
            .collect();
        let d = p / "decoder" / "blocks";
        let mut blocks = Vec::new();
        for (i, (&c_skip, &c_out)) in skip_channels.iter().zip(&DECODER_CHANNELS).enumerate() {
            blocks.push(DecoderBlock::new(&(&d / i), c_in, c_skip, c_out));
            c_in = c_out;
        }
        let head = nn::conv2d(
            p / "segmentation_head" / "0",
            c_in,
            config.num_classes,
            3,
            nn::ConvConfig {
                padding: 1,
                ..Default::default()
            },
        );
        Ok(Unet {
            encoder,
            skip_levels,
            blocks,
            head,
            config,
        })
    }

    /// Logits `(N, classes, H, W)` for any input size: the input is padded (zeros, right and
    /// bottom) to a multiple of 32 and the logits cropped back.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let (ph, pw) = ((32 - h % 32) % 32, (32 - w % 32) % 32);
        let padded = if ph > 0 || pw > 0 {
            x.constant_pad_nd([0, pw, 0, ph])
        } else {
            x.shallow_clone()
        };
        let feats = self.encoder.features(&padded, train);
        let mut y = feats[feats.len() - 1].shallow_clone();
        for (block, level) in self.blocks.iter().zip(&self.skip_levels) {
            y = block.forward_t(&y, level.map(|l| &feats[l]), train);
        }
        let mut logits = self.head.forward(&y);
        // Encoders with unpadded layers (Inception v3, AlexNet, SqueezeNet) end a few pixels
        // short of the padded input: the logits are resized to it.
        let (hp, wp) = (h + ph, w + pw);
        if logits.size()[2..] != [hp, wp] {
            logits = logits.upsample_bilinear2d([hp, wp], false, None, None);
        }
        if ph > 0 || pw > 0 {
            logits.narrow(2, 0, h).narrow(3, 0, w)
        } else {
            logits
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn params(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    #[test]
    fn resnet34_one_class_has_smp_parameter_count() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = Unet::new(
            &vs.root(),
            UnetConfig {
                encoder: "resnet34".into(),
                num_classes: 1,
            },
        )
        .expect("build");
        assert_eq!(params(&vs), 24_436_369);
        let vars = vs.variables();
        for name in [
            "encoder.layer4.2.bn2.running_var",
            "decoder.blocks.0.conv1.0.weight",
            "decoder.blocks.4.conv2.1.bias",
            "segmentation_head.0.weight",
        ] {
            assert!(vars.contains_key(name), "{name}");
        }
        // smp's ResNet encoder has no classifier, so its checkpoints load strictly.
        assert!(!vars.keys().any(|k| k.starts_with("encoder.fc")));
    }

    #[test]
    fn any_input_size_gives_logits_of_that_size() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Unet::new(
            &vs.root(),
            UnetConfig {
                encoder: "resnet18".into(),
                num_classes: 3,
            },
        )
        .expect("build");
        for (h, w) in [(64, 64), (70, 45), (33, 97)] {
            let x = Tensor::zeros([1, 3, h, w], (Kind::Float, Device::Cpu));
            let y = tch::no_grad(|| m.forward_t(&x, false));
            assert_eq!(y.size(), vec![1, 3, h, w]);
        }
    }

    /// One encoder of each new family decodes to logits of the input's size, those whose pyramid
    /// starts at stride 4 (ConvNeXt, Swin) and those with unpadded layers (Inception v3) too; a
    /// plain ViT is refused with the reason.
    #[test]
    fn encoders_of_every_family_give_input_sized_logits() {
        for encoder in [
            "convnext_tiny",
            "swin_t",
            "swin_v2_t",
            "regnet_x_400mf",
            "resnext50_32x4d",
            "efficientnet_v2_s",
            "densenet121",
            "mnasnet0_5",
            "shufflenet_v2_x0_5",
            "googlenet",
            "inception_v3",
            "alexnet",
        ] {
            let vs = nn::VarStore::new(Device::Cpu);
            let m = Unet::new(
                &vs.root(),
                UnetConfig {
                    encoder: encoder.into(),
                    num_classes: 2,
                },
            )
            .expect(encoder);
            let (h, w) = if encoder == "inception_v3" {
                (160, 176)
            } else {
                (64, 70)
            };
            let x = Tensor::zeros([1, 3, h, w], (Kind::Float, Device::Cpu));
            let y = tch::no_grad(|| m.forward_t(&x, false));
            assert_eq!(y.size(), vec![1, 2, h, w], "{encoder}");
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let err = Unet::new(
            &vs.root(),
            UnetConfig {
                encoder: "vit_b_16".into(),
                num_classes: 2,
            },
        )
        .expect_err("single scale");
        assert!(err.to_string().contains("single scale"), "{err}");
    }
}
