//! SSD300's VGG16 backbone (Liu et al., "SSD: Single Shot MultiBox Detector", 2016, figure 2),
//! as torchvision's `SSDFeatureExtractorVGG` holds it:
//!
//! - `features.{0..21}`: VGG16 up to conv4_3 and its ReLU, the third max-pool in ceil mode (so
//!   300 pixels give a 38×38 map); its output, L2-normalised per position and scaled by the
//!   learned `scale_weight` (512 values, initially 20), is the first map;
//! - `extra.0`: the fourth max-pool, conv5_1–5_3 (`extra.0.{1,3,5}`), a 3×3 stride-1 max-pool,
//!   the dilated fc6 (`extra.0.7.1`, 3×3, dilation 6) and fc7 (`extra.0.7.3`, 1×1): 19×19;
//! - `extra.{1..4}`: 1×1 then 3×3 convolutions (`.0`, `.2`) to 10×10, 5×5, 3×3 and 1×1.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use ferrovis_core::nn::{conv2d, Conv2dSpec};

use super::head::xavier_conv;

/// `features.N` of VGG16 for each convolution up to conv4_3, with its channels.
const FEATURE_CONVS: [(usize, i64, i64); 10] = [
    (0, 3, 64),
    (2, 64, 64),
    (5, 64, 128),
    (7, 128, 128),
    (10, 128, 256),
    (12, 256, 256),
    (14, 256, 256),
    (17, 256, 512),
    (19, 512, 512),
    (21, 512, 512),
];

/// The max-pools of `features` (the one at 16 in ceil mode).
const FEATURE_POOLS: [usize; 3] = [4, 9, 16];

/// torchvision's `stage_indices` for VGG16's features: 0 and the first four max-pools.
/// `trainable_backbone_layers` counts on them.
pub const STAGE_INDICES: [usize; 5] = [0, 4, 9, 16, 23];

/// One of the four extra blocks: 1×1 to `mid`, then 3×3 to `out` (stride 2 with padding 1, or
/// unpadded).
#[derive(Debug)]
struct ExtraBlock {
    reduce: nn::Conv2D,
    conv: nn::Conv2D,
}

/// SSD300's backbone.
#[derive(Debug)]
pub struct SsdVgg {
    features: Vec<(usize, nn::Conv2D)>,
    scale_weight: Tensor,
    conv5: [nn::Conv2D; 3],
    fc6: nn::Conv2D,
    fc7: nn::Conv2D,
    extra: Vec<ExtraBlock>,
}

impl SsdVgg {
    /// Builds the backbone under `p` (`p.features.*`, `p.scale_weight`, `p.extra.*`): VGG's
    /// convolutions initialised as torchvision's VGG (Kaiming-normal, fan-out), fc6, fc7 and
    /// the extra blocks Xavier-uniform.
    pub fn new(p: &Path) -> Self {
        let f = p / "features";
        let vgg_conv =
            |path: Path, c_in, c_out| conv2d(&path, c_in, c_out, Conv2dSpec::new(3).bias(true));
        let features = FEATURE_CONVS
            .iter()
            .map(|&(i, c_in, c_out)| (i, vgg_conv(&f / i.to_string(), c_in, c_out)))
            .collect();
        let scale_weight = p.var("scale_weight", &[512], nn::Init::Const(20.0));
        let e0 = p / "extra" / "0";
        let conv5 = [1, 3, 5].map(|i| vgg_conv(&e0 / i.to_string(), 512, 512));
        let fc = &e0 / "7";
        let fc6 = xavier_conv(
            &(&fc / "1"),
            512,
            1024,
            3,
            nn::ConvConfig {
                padding: 6,
                dilation: 6,
                ..Default::default()
            },
        );
        let fc7 = xavier_conv(&(&fc / "3"), 1024, 1024, 1, Default::default());
        // (in, mid, out, stride-2 padded?) for conv8_2 … conv11_2.
        let extra = [
            (1024, 256, 512, true),
            (512, 128, 256, true),
            (256, 128, 256, false),
            (256, 128, 256, false),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(c_in, mid, out, strided))| {
            let b = p / "extra" / (i + 1).to_string();
            ExtraBlock {
                reduce: xavier_conv(&(&b / "0"), c_in, mid, 1, Default::default()),
                conv: xavier_conv(
                    &(&b / "2"),
                    mid,
                    out,
                    3,
                    if strided {
                        nn::ConvConfig {
                            stride: 2,
                            padding: 1,
                            ..Default::default()
                        }
                    } else {
                        Default::default()
                    },
                ),
            }
        })
        .collect();
        SsdVgg {
            features,
            scale_weight,
            conv5,
            fc6,
            fc7,
            extra,
        }
    }

    /// The six maps (38, 19, 10, 5, 3, 1 cells at 300 pixels), channels 512, 1024, 512, 256,
    /// 256, 256.
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let mut y = x.shallow_clone();
        for (i, conv) in &self.features {
            if let Some(&pool) = FEATURE_POOLS.iter().find(|&&p| p + 1 == *i) {
                y = y.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], pool == 16);
            }
            y = conv.forward(&y).relu();
        }
        // F.normalize: divided by the channel vector's L2 norm, at least 1e-12.
        let norm = y.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
        let mut out = vec![self.scale_weight.view([1, -1, 1, 1]) * (&y / norm)];
        y = y.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        for conv in &self.conv5 {
            y = conv.forward(&y).relu();
        }
        y = y.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false);
        y = self.fc7.forward(&self.fc6.forward(&y).relu()).relu();
        out.push(y.shallow_clone());
        for block in &self.extra {
            y = block.conv.forward(&block.reduce.forward(&y).relu()).relu();
            out.push(y.shallow_clone());
        }
        out
    }

    /// Channels of the six maps.
    pub fn out_channels(&self) -> Vec<i64> {
        vec![512, 1024, 512, 256, 256, 256]
    }

    /// The index in torchvision's `vgg16().features` of a backbone variable's module
    /// (`backbone.features.N.*` is N, `backbone.extra.0.{1,3,5}.*` are 24, 26, 28), for
    /// `trainable_backbone_layers`; `None` for the layers SSD adds.
    pub fn vgg_index(name: &str) -> Option<usize> {
        let module = |rest: &str| rest.split('.').next()?.parse::<usize>().ok();
        if let Some(rest) = name.strip_prefix("backbone.features.") {
            return module(rest);
        }
        let k = module(name.strip_prefix("backbone.extra.0.")?)?;
        (k < 7).then_some(23 + k)
    }
}
