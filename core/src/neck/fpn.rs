//! torchvision's `FeaturePyramidNetwork` (Lin et al., "Feature Pyramid Networks for Object
//! Detection", 2017) with its names: `inner_blocks.i.0` (1×1 lateral convolutions),
//! `layer_blocks.i.0` (3×3 output convolutions), with BatchNorm at `.1` when asked (Faster R-CNN
//! v2), and the extra blocks `LastLevelMaxPool` (Faster R-CNN's `pool` level) or
//! `LastLevelP6P7` (`extra_blocks.p6`, `extra_blocks.p7`: RetinaNet-style). Checkpoints with the
//! old spellings (`inner_blocks.i.weight`, before torchvision's FPN version 2) load through
//! [`Fpn::legacy_renames`].

use tch::nn::{self, Module, Path};
use tch::Tensor;

use crate::checkpoint::LoadOptions;
use crate::error::{Error, Result};
use crate::nn::{Activation, Conv2dSpec, ConvNormAct};

/// What comes after the last pyramid level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraBlock {
    /// Nothing.
    None,
    /// A `pool` level: the last level subsampled by 2 (Faster R-CNN).
    LastLevelMaxPool,
    /// `p6` (3×3 stride 2) and `p7` (ReLU, 3×3 stride 2) from the last backbone level with
    /// `in_channels`, or from the last pyramid level when that has as many channels.
    LastLevelP6P7 {
        /// Channels of the input of `p6`.
        in_channels: i64,
    },
}

/// The shape of a feature pyramid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpnConfig {
    /// Channels of each backbone level fed in, finest first.
    pub in_channels: Vec<i64>,
    /// Channels of every pyramid level.
    pub out_channels: i64,
    /// The extra levels.
    pub extra: ExtraBlock,
    /// BatchNorm after each convolution (which then has no bias), as
    /// `fasterrcnn_resnet50_fpn_v2` builds it.
    pub batch_norm: bool,
}

/// A convolution as torchvision's `Conv2dNormActivation` with no activation: with a bias, or
/// without one and followed by BatchNorm.
#[derive(Debug)]
enum Block {
    Plain(nn::Conv2D),
    Normed(ConvNormAct),
}

impl Block {
    fn new(p: &Path, c_in: i64, c_out: i64, k: i64, batch_norm: bool) -> Self {
        if batch_norm {
            let block = ConvNormAct::new(
                p,
                c_in,
                c_out,
                Conv2dSpec::new(k),
                Activation::None,
                1e-5,
                0.1,
            );
            // torchvision's FPN re-draws every convolution it holds, the normed ones too.
            let bound = (3.0 / (c_in * k * k) as f64).sqrt();
            tch::no_grad(|| {
                let _ = block.conv.ws.shallow_clone().uniform_(-bound, bound);
            });
            return Block::Normed(block);
        }
        Block::Plain(fpn_conv(&(p / "0"), c_in, c_out, k, 1))
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Block::Plain(c) => c.forward(x),
            Block::Normed(c) => c.forward_t(x, train),
        }
    }
}

/// A convolution with bias, initialised as torchvision's FPN initialises its own:
/// `kaiming_uniform_(a=1)` (bound √(3 / fan_in)), zero bias.
fn fpn_conv(p: &Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> nn::Conv2D {
    let bound = (3.0 / (c_in * k * k) as f64).sqrt();
    let cfg = nn::ConvConfig {
        stride,
        padding: k / 2,
        ws_init: nn::Init::Uniform {
            lo: -bound,
            up: bound,
        },
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

/// A feature pyramid with torchvision's names.
#[derive(Debug)]
pub struct Fpn {
    inner_blocks: Vec<Block>,
    layer_blocks: Vec<Block>,
    p6p7: Option<(nn::Conv2D, nn::Conv2D, bool)>,
    /// What was built.
    pub config: FpnConfig,
}

impl Fpn {
    /// Builds the pyramid under `p` (`p` is the FPN's own path, e.g. `backbone.fpn`).
    pub fn new(p: &Path, config: FpnConfig) -> Result<Self> {
        if config.in_channels.is_empty() || config.in_channels.contains(&0) {
            return Err(Error::Invalid(format!(
                "fpn: in_channels {:?} (at least one level, none of 0 channels)",
                config.in_channels
            )));
        }
        let out = config.out_channels;
        let (mut inner_blocks, mut layer_blocks) = (Vec::new(), Vec::new());
        for (i, &c) in config.in_channels.iter().enumerate() {
            let bn = config.batch_norm;
            inner_blocks.push(Block::new(&(p / "inner_blocks" / i), c, out, 1, bn));
            layer_blocks.push(Block::new(&(p / "layer_blocks" / i), out, out, 3, bn));
        }
        let p6p7 = match config.extra {
            ExtraBlock::LastLevelP6P7 { in_channels } => {
                let e = p / "extra_blocks";
                Some((
                    fpn_conv(&(&e / "p6"), in_channels, out, 3, 2),
                    fpn_conv(&(&e / "p7"), out, out, 3, 2),
                    in_channels == out,
                ))
            }
            _ => None,
        };
        Ok(Fpn {
            inner_blocks,
            layer_blocks,
            p6p7,
            config,
        })
    }

    /// The pyramid's level names, as torchvision's output dict keys them: `0`, `1`, … then
    /// `pool` or `p6`, `p7`.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.inner_blocks.len())
            .map(|i| i.to_string())
            .collect();
        match self.config.extra {
            ExtraBlock::None => {}
            ExtraBlock::LastLevelMaxPool => names.push("pool".into()),
            ExtraBlock::LastLevelP6P7 { .. } => names.extend(["p6".into(), "p7".into()]),
        }
        names
    }

    /// The pyramid levels for backbone levels `x` (finest first), in [`Fpn::names`] order.
    pub fn forward_t(&self, x: &[Tensor], train: bool) -> Result<Vec<Tensor>> {
        if x.len() != self.inner_blocks.len() {
            return Err(Error::Invalid(format!(
                "fpn: {} feature maps for {} levels",
                x.len(),
                self.inner_blocks.len()
            )));
        }
        let n = x.len();
        let mut last_inner = self.inner_blocks[n - 1].forward_t(&x[n - 1], train);
        let mut results = vec![self.layer_blocks[n - 1].forward_t(&last_inner, train)];
        for i in (0..n - 1).rev() {
            let lateral = self.inner_blocks[i].forward_t(&x[i], train);
            let (h, w) = (lateral.size()[2], lateral.size()[3]);
            let top_down = last_inner.upsample_nearest2d([h, w], None, None);
            last_inner = lateral + top_down;
            results.insert(0, self.layer_blocks[i].forward_t(&last_inner, train));
        }
        match (&self.config.extra, &self.p6p7) {
            (ExtraBlock::LastLevelMaxPool, _) => {
                let last = &results[results.len() - 1];
                // torchvision's "max pool" of kernel 1: a stride-2 subsampling.
                let pooled = last.max_pool2d([1, 1], [2, 2], [0, 0], [1, 1], false);
                results.push(pooled);
            }
            (ExtraBlock::LastLevelP6P7 { .. }, Some((p6, p7, use_p5))) => {
                let source = if *use_p5 {
                    &results[results.len() - 1]
                } else {
                    &x[n - 1]
                };
                let y6 = p6.forward(source);
                let y7 = p7.forward(&y6.relu());
                results.extend([y6, y7]);
            }
            _ => {}
        }
        Ok(results)
    }

    /// `opts` with the renames torchvision applies to FPN checkpoints older than its version 2:
    /// `<prefix>inner_blocks.i.weight` → `<prefix>inner_blocks.i.0.weight` (likewise `bias` and
    /// `layer_blocks`), so such checkpoints load by name.
    pub fn legacy_renames(opts: LoadOptions, prefix: &str) -> Result<LoadOptions> {
        let p = regex::escape(prefix);
        opts.rename_regex(
            &format!(r"^({p}(?:inner|layer)_blocks\.\d+)\.(weight|bias)$"),
            "$1.0.$2",
        )
    }
}
