//! MaxViT (Tu et al., "MaxViT: Multi-Axis Vision Transformer", 2022) with torchvision's names:
//! `stem.0` (3×3 stride-2 conv, BatchNorm, GELU) and `stem.1` (3×3 conv with bias), then four
//! `blocks.B.layers.L` of MaxViT layers, each an MBConv (`layers.MBconv`) followed by attention
//! in 7×7 windows (`layers.window_attention`) and in a 7×7 dilated grid
//! (`layers.grid_attention`), then `classifier.{2,3,5}`: LayerNorm → Linear → tanh → Linear.
//!
//! Where torchvision differs from the paper (and this port follows torchvision): the attention
//! logits are scaled by `channels^-1/2`, not `head_dim^-1/2`; the BatchNorms use eps 1e-3 and
//! momentum 0.01 (the ImageNet weights were trained with 0.99, as their documentation says);
//! stochastic depth rises linearly to 0.2 over all layers and also drops the MBConv branch.
//!
//! torchvision is built for one `input_size` and asserts that every stage's side is a multiple of
//! the partition size (7): 224, 448, …. [`MaxVit::new`] refuses other `image_size`s the same way,
//! but the network itself holds nothing that depends on the size (the relative-position tables
//! are per 7×7 partition), so at run time any input is accepted: a stage whose side is not a
//! multiple of 7 is zero-padded at the bottom and right before each partition attention and
//! cropped back after it (padded positions take part in the attention, as in torchvision's Swin).
//! A non-square input uses a 7×7 grid in both directions, where torchvision would fail.
//!
//! torchvision's MaxViT normalises channels-last tokens with `nn.LayerNorm` only, so no
//! LayerNorm2d is needed here.

use tch::nn::{self, Init, LayerNorm, LayerNormConfig, Module, Path};
use tch::Tensor;

use super::{
    global_pool, Backbone, BackboneOptions, FeatureInfo, Interpolation, PretrainedCfg, Stage,
    IMAGENET_MEAN, IMAGENET_STD,
};
use crate::error::{Error, Result};
use crate::nn::{
    stochastic_depth, Activation, BatchNorm2d, Conv2dSpec, ConvNormAct, SqueezeExcitation,
};

/// BatchNorm eps and momentum of every convolutional normalisation.
const BN: (f64, f64) = (1e-3, 0.01);
/// Standard deviation of torchvision's `_init_weights` for every convolution and linear layer
/// (and of the relative-position tables' truncated normal, whose ±2 bounds are 100 σ away, so a
/// plain normal draws the same distribution).
const INIT_STD: f64 = 0.02;

/// A MaxViT variant (torchvision's `_maxvit` arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct MaxVitConfig {
    /// Channels of the stem.
    pub stem_channels: i64,
    /// Output channels of each block.
    pub block_channels: Vec<i64>,
    /// MaxViT layers in each block.
    pub block_layers: Vec<usize>,
    /// Channels per attention head.
    pub head_dim: i64,
    /// Stochastic-depth probability of the last layer (linear from 0 over all layers).
    pub stochastic_depth: f64,
    /// Side of the attention windows and of the attention grid.
    pub partition_size: i64,
    /// MBConv expansion of the output channels.
    pub expansion_ratio: f64,
    /// Squeeze-excite width as a fraction of the output channels.
    pub squeeze_ratio: f64,
    /// Hidden width of the attention MLPs as a multiple of the channels.
    pub mlp_ratio: i64,
}

impl MaxVitConfig {
    /// `maxvit_t` as torchvision defines it.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "maxvit_t" => Some(MaxVitConfig {
                stem_channels: 64,
                block_channels: vec![64, 128, 256, 512],
                block_layers: vec![2, 2, 5, 2],
                head_dim: 32,
                stochastic_depth: 0.2,
                partition_size: 7,
                expansion_ratio: 4.0,
                squeeze_ratio: 0.25,
                mlp_ratio: 4,
            }),
            _ => None,
        }
    }

    /// The side of the stem's output and of each block's output for a square input of side
    /// `size` (every stage halves with a 3×3, stride-2, padding-1 convolution).
    pub fn stage_sizes(&self, size: i64) -> Vec<i64> {
        let half = |s: i64| (s - 1).div_euclid(2) + 1;
        let mut s = half(size);
        let mut sizes = vec![s];
        for _ in &self.block_channels {
            s = half(s);
            sizes.push(s);
        }
        sizes
    }
}

/// A linear layer initialised as torchvision's MaxViT: weights N(0, 0.02²), zero bias.
fn linear(p: &Path, c_in: i64, c_out: i64, bias: bool) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        },
        bs_init: Some(Init::Const(0.0)),
        bias,
    };
    nn::linear(p, c_in, c_out, cfg)
}

/// A convolution initialised as torchvision's MaxViT: weights N(0, 0.02²), zero bias.
fn conv2d(p: &Path, c_in: i64, c_out: i64, kernel: i64, bias: bool) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: (kernel - 1) / 2,
        bias,
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        },
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, kernel, cfg)
}

/// Redraws a weight the shared blocks initialise their own way (ConvNormAct's and
/// SqueezeExcitation's Kaiming) from MaxViT's N(0, 0.02²).
fn renormal(weight: &Tensor) {
    tch::no_grad(|| {
        let _ = weight.shallow_clone().normal_(0.0, INIT_STD);
    });
}

/// A conv-BatchNorm whose GELU (which `Activation` lacks) follows in the caller.
fn conv_bn(p: &Path, c_in: i64, c_out: i64, spec: Conv2dSpec) -> ConvNormAct {
    let block = ConvNormAct::new(p, c_in, c_out, spec, Activation::None, BN.0, BN.1);
    renormal(&block.conv.ws);
    block
}

/// The residual path of a downsampling or widening MBConv: `proj.0` 3×3 average pool (stride 2)
/// then `proj.1` 1×1 conv, or the conv alone (`proj.0`) at stride 1.
#[derive(Debug)]
struct Shortcut {
    pool: bool,
    conv: nn::Conv2D,
}

/// torchvision's MaxViT `MBConv`: pre-norm BatchNorm → 1×1 expand (BN, GELU) → 3×3 depthwise
/// (BN, GELU, stride) → squeeze-excite (SiLU, sigmoid) → 1×1 projection with bias, added to the
/// (projected) input.
#[derive(Debug)]
struct MBConv {
    shortcut: Option<Shortcut>,
    pre_norm: BatchNorm2d,
    conv_a: ConvNormAct,
    conv_b: ConvNormAct,
    se: SqueezeExcitation,
    conv_c: nn::Conv2D,
    drop_prob: f64,
}

impl MBConv {
    fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        stride: i64,
        drop_prob: f64,
        cfg: &MaxVitConfig,
    ) -> Self {
        let shortcut = (stride != 1 || c_in != c_out).then(|| {
            let pool = stride == 2;
            let at = if pool { "1" } else { "0" };
            Shortcut {
                pool,
                conv: conv2d(&(p / "proj" / at), c_in, c_out, 1, true),
            }
        });
        let l = p / "layers";
        // torchvision truncates both widths with int().
        let mid = (c_out as f64 * cfg.expansion_ratio) as i64;
        let sqz = (c_out as f64 * cfg.squeeze_ratio) as i64;
        let pre_norm = BatchNorm2d::with(&(&l / "pre_norm"), c_in, BN.0, BN.1);
        let conv_a = conv_bn(&(&l / "conv_a"), c_in, mid, Conv2dSpec::new(1));
        let conv_b = conv_bn(
            &(&l / "conv_b"),
            mid,
            mid,
            Conv2dSpec::new(3).stride(stride).groups(mid),
        );
        let se_path = &l / "squeeze_excitation";
        let se = SqueezeExcitation::new(&se_path, mid, sqz, Activation::SiLU);
        for fc in ["fc1", "fc2"] {
            if let Some(w) = (&se_path / fc).get("weight") {
                renormal(&w);
            }
        }
        let conv_c = conv2d(&(&l / "conv_c"), mid, c_out, 1, true);
        MBConv {
            shortcut,
            pre_norm,
            conv_a,
            conv_b,
            se,
            conv_c,
            drop_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let res = match &self.shortcut {
            Some(s) if s.pool => {
                s.conv
                    .forward(&x.avg_pool2d([3, 3], [2, 2], [1, 1], false, true, None))
            }
            Some(s) => s.conv.forward(x),
            None => x.shallow_clone(),
        };
        let y = self.pre_norm.forward_t(x, train);
        let y = self.conv_a.forward_t(&y, train).gelu("none");
        let y = self.conv_b.forward_t(&y, train).gelu("none");
        let y = self.conv_c.forward(&self.se.forward(&y));
        stochastic_depth(&y, self.drop_prob, train) + res
    }
}

/// The flattened relative-position index of a `side`×`side` partition: entry `(a, b)` names the
/// table row of the offset from token `b` to token `a` (torchvision's
/// `_get_relative_position_index`).
fn relative_position_index(side: i64) -> Vec<i64> {
    let n = side * side;
    let mut index = Vec::with_capacity((n * n) as usize);
    for a in 0..n {
        for b in 0..n {
            let dy = a / side - b / side + side - 1;
            let dx = a % side - b % side + side - 1;
            index.push(dy * (2 * side - 1) + dx);
        }
    }
    index
}

/// torchvision's `RelativePositionalMultiHeadAttention` over `(B, G, P, C)` token groups: one
/// learned bias per head and relative offset inside a partition, added to the logits.
#[derive(Debug)]
struct RelativeAttention {
    to_qkv: nn::Linear,
    merge: nn::Linear,
    /// `relative_position_bias_table`, `((2s−1)², heads)`.
    table: Tensor,
    /// `relative_position_index`, the persistent int64 buffer `(s², s²)`.
    index: Tensor,
    heads: i64,
    head_dim: i64,
    tokens: i64,
    scale: f64,
}

impl RelativeAttention {
    fn new(p: &Path, channels: i64, head_dim: i64, side: i64) -> Self {
        let heads = channels / head_dim;
        let tokens = side * side;
        let index = Tensor::from_slice(&relative_position_index(side))
            .view([tokens, tokens])
            .to_device(p.device());
        RelativeAttention {
            to_qkv: linear(&(p / "to_qkv"), channels, 3 * heads * head_dim, true),
            merge: linear(&(p / "merge"), heads * head_dim, channels, true),
            table: p.randn(
                "relative_position_bias_table",
                &[(2 * side - 1) * (2 * side - 1), heads],
                0.0,
                INIT_STD,
            ),
            index: p.add("relative_position_index", index, false),
            heads,
            head_dim,
            tokens,
            // torchvision scales by the full width, not the head width.
            scale: (channels as f64).powf(-0.5),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, g, p, c) = x.size4().expect("partitioned tokens are 4-D");
        let qkv = self
            .to_qkv
            .forward(x)
            .reshape([b * g, p, 3, self.heads, self.head_dim])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let bias = self
            .table
            .index_select(0, &self.index.view([-1]))
            .view([self.tokens, self.tokens, self.heads])
            .permute([2, 0, 1])
            .unsqueeze(0);
        let out = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(&bias),
            0.0,
            false,
            self.scale,
            false,
        );
        self.merge
            .forward(&out.permute([0, 2, 1, 3]).reshape([b, g, p, c]))
    }
}

/// torchvision's `PartitionAttentionLayer`: tokens grouped into 7×7 windows (`window`) or into
/// a 7×7 grid strided over the whole map (`grid`), pre-norm attention and a ×4 GELU MLP, each
/// residual with stochastic depth.
#[derive(Debug)]
struct PartitionAttention {
    grid: bool,
    side: i64,
    norm: LayerNorm,
    attn: RelativeAttention,
    mlp_norm: LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    drop_prob: f64,
}

impl PartitionAttention {
    fn new(p: &Path, channels: i64, grid: bool, drop_prob: f64, cfg: &MaxVitConfig) -> Self {
        let a = p / "attn_layer";
        let m = p / "mlp_layer";
        let hidden = channels * cfg.mlp_ratio;
        let ln = |path: &Path| nn::layer_norm(path, vec![channels], LayerNormConfig::default());
        PartitionAttention {
            grid,
            side: cfg.partition_size,
            norm: ln(&(&a / "0")),
            attn: RelativeAttention::new(&(&a / "1"), channels, cfg.head_dim, cfg.partition_size),
            mlp_norm: ln(&(&m / "0")),
            fc1: linear(&(&m / "1"), channels, hidden, true),
            fc2: linear(&(&m / "3"), hidden, channels, true),
            drop_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (b, c, h, w) = x.size4().expect("NCHW");
        let s = self.side;
        let (hp, wp) = ((h + s - 1) / s * s, (w + s - 1) / s * s);
        let padded = (hp, wp) != (h, w);
        let x = if padded {
            x.constant_pad_nd([0, wp - w, 0, hp - h])
        } else {
            x.shallow_clone()
        };
        // Cells of ph×pw pixels: windows are s×s cells; the grid takes one pixel of each cell
        // at the same offset, s×s of them, once the cell and token axes are swapped.
        let (ph, pw) = if self.grid { (hp / s, wp / s) } else { (s, s) };
        let (nh, nw) = (hp / ph, wp / pw);
        let mut t = x
            .reshape([b, c, nh, ph, nw, pw])
            .permute([0, 2, 4, 3, 5, 1])
            .reshape([b, nh * nw, ph * pw, c]);
        if self.grid {
            t = t.transpose(1, 2);
        }
        let y = self.attn.forward(&self.norm.forward(&t));
        let t = t + stochastic_depth(&y, self.drop_prob, train);
        let y = self
            .fc2
            .forward(&self.fc1.forward(&self.mlp_norm.forward(&t)).gelu("none"));
        let mut t = t + stochastic_depth(&y, self.drop_prob, train);
        if self.grid {
            t = t.transpose(1, 2);
        }
        let y = t
            .reshape([b, nh, nw, ph, pw, c])
            .permute([0, 5, 1, 3, 2, 4])
            .reshape([b, c, hp, wp]);
        if padded {
            y.narrow(2, 0, h).narrow(3, 0, w)
        } else {
            y
        }
    }
}

/// `MaxVitLayer`: MBConv, window attention, grid attention.
#[derive(Debug)]
struct MaxVitLayer {
    mbconv: MBConv,
    window: PartitionAttention,
    grid: PartitionAttention,
}

impl MaxVitLayer {
    fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        stride: i64,
        drop_prob: f64,
        cfg: &MaxVitConfig,
    ) -> Self {
        let l = p / "layers";
        MaxVitLayer {
            mbconv: MBConv::new(&(&l / "MBconv"), c_in, c_out, stride, drop_prob, cfg),
            window: PartitionAttention::new(
                &(&l / "window_attention"),
                c_out,
                false,
                drop_prob,
                cfg,
            ),
            grid: PartitionAttention::new(&(&l / "grid_attention"), c_out, true, drop_prob, cfg),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.mbconv.forward_t(x, train);
        let y = self.window.forward_t(&y, train);
        self.grid.forward_t(&y, train)
    }
}

/// The classifier: `classifier.2` LayerNorm, `classifier.3` Linear + tanh (the pre-logits),
/// `classifier.5` Linear without bias.
#[derive(Debug)]
struct Classifier {
    norm: LayerNorm,
    pre_logits: nn::Linear,
    fc: nn::Linear,
}

/// MaxViT with torchvision's names.
#[derive(Debug)]
pub struct MaxVit {
    stem: ConvNormAct,
    stem_conv: nn::Conv2D,
    blocks: Vec<Vec<MaxVitLayer>>,
    /// `None` for an encoder (`num_classes` 0).
    classifier: Option<Classifier>,
    info: Vec<FeatureInfo>,
}

impl MaxVit {
    /// Builds the network under `p`. Nothing in it depends on the input size, so
    /// `opts.image_size` is not needed: where torchvision requires every stage's side to be a
    /// multiple of the partition size (224 works, 256 does not), this network pads each stage to
    /// one at run time. The classifier has no dropout, so `opts.dropout` is unused.
    pub fn new(p: &Path, cfg: &MaxVitConfig, opts: &BackboneOptions) -> Result<Self> {
        if cfg.block_channels.len() != cfg.block_layers.len()
            || cfg.head_dim < 1
            || cfg.block_channels.iter().any(|c| c % cfg.head_dim != 0)
        {
            return Err(Error::Invalid(format!(
                "MaxViT: one layer count per block and channels divisible by head_dim {} needed, \
                 got channels {:?} and layers {:?}",
                cfg.head_dim, cfg.block_channels, cfg.block_layers
            )));
        }
        let sp = p / "stem";
        let c0 = cfg.stem_channels;
        let stem = conv_bn(&(&sp / "0"), 3, c0, Conv2dSpec::new(3).stride(2));
        let stem_conv = conv2d(&(&sp / "1" / "0"), c0, c0, 3, true);

        let total: usize = cfg.block_layers.iter().sum();
        let sd = opts.stochastic_depth.unwrap_or(cfg.stochastic_depth);
        // numpy's linspace(0, sd, total).
        let prob = |i: usize| {
            if total > 1 {
                sd * i as f64 / (total - 1) as f64
            } else {
                0.0
            }
        };
        let mut info = vec![FeatureInfo {
            module: "stem".into(),
            channels: c0,
            stride: 2,
        }];
        let (mut blocks, mut c_in, mut k) = (Vec::new(), c0, 0usize);
        for (bi, (&c_out, &n)) in cfg.block_channels.iter().zip(&cfg.block_layers).enumerate() {
            let bp = p / "blocks" / bi;
            let mut layers = Vec::with_capacity(n);
            for li in 0..n {
                let (ci, stride) = if li == 0 { (c_in, 2) } else { (c_out, 1) };
                let lp = &bp / "layers" / li;
                layers.push(MaxVitLayer::new(&lp, ci, c_out, stride, prob(k), cfg));
                k += 1;
            }
            blocks.push(layers);
            info.push(FeatureInfo {
                module: format!("blocks.{bi}"),
                channels: c_out,
                stride: 4 << bi,
            });
            c_in = c_out;
        }
        let classifier = (opts.num_classes > 0).then(|| {
            let c = p / "classifier";
            Classifier {
                norm: nn::layer_norm(&c / "2", vec![c_in], LayerNormConfig::default()),
                pre_logits: linear(&(&c / "3"), c_in, c_in, true),
                fc: linear(&(&c / "5"), c_in, opts.num_classes, false),
            }
        });
        Ok(MaxVit {
            stem,
            stem_conv,
            blocks,
            classifier,
            info,
        })
    }
}

impl Backbone for MaxVit {
    /// The whole `classifier` Sequential: an encoder keeps none of its layers.
    fn classifier_pattern(&self) -> String {
        r"^classifier\.".into()
    }

    fn forward_head(&self, pooled: &Tensor, _train: bool) -> Tensor {
        match &self.classifier {
            Some(c) => c.fc.forward(pooled),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut y = self
            .stem_conv
            .forward(&self.stem.forward_t(x, train).gelu("none"));
        let mut out = Vec::with_capacity(self.blocks.len() + 1);
        out.push(y.shallow_clone());
        for block in &self.blocks {
            for layer in block {
                y = layer.forward_t(&y, train);
            }
            out.push(y.shallow_clone());
        }
        out
    }

    /// The tanh output of `classifier.3`, what `classifier.5` classifies; an encoder (no
    /// classifier) returns the globally averaged last block instead.
    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self
            .features(x, train)
            .pop()
            .unwrap_or_else(|| x.shallow_clone());
        let pooled = global_pool(&last);
        match &self.classifier {
            Some(c) => c.pre_logits.forward(&c.norm.forward(&pooled)).tanh(),
            None => pooled,
        }
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    /// `MaxVit_T_Weights.IMAGENET1K_V1`: bicubic resize to 224, crop 224.
    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            input_size: 224,
            resize_size: 224,
            interpolation: Interpolation::Bicubic,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// `stem`, `stage1..4` (`blocks.0..3`), `fc` (`classifier.2`, `classifier.3`, which the
    /// pooled features include) and `head` (`classifier.5`).
    fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::new("stem", &["stem"])];
        for b in 0..self.blocks.len() {
            stages.push(Stage {
                name: format!("stage{}", b + 1),
                prefixes: vec![format!("blocks.{b}")],
            });
        }
        if self.classifier.is_some() {
            stages.push(Stage::new("fc", &["classifier.2", "classifier.3"]));
        }
        stages.push(Stage::new("head", &["classifier.5"]));
        stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn relative_position_index_matches_torchvision() {
        // torchvision's _get_relative_position_index(2, 2).
        assert_eq!(
            relative_position_index(2),
            vec![4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]
        );
    }

    #[test]
    fn sizes_that_are_not_multiples_of_seven_are_padded_at_run() {
        let cfg = MaxVitConfig::by_name("maxvit_t").expect("maxvit_t");
        assert_eq!(cfg.stage_sizes(224), vec![112, 56, 28, 14, 7]);
        // torchvision refuses input_size 256 (blocks of 64, 32, 16, 8); built here, it runs.
        let vs = nn::VarStore::new(Device::Cpu);
        let opts = BackboneOptions {
            image_size: Some(256),
            ..Default::default()
        };
        assert!(MaxVit::new(&vs.root(), &cfg, &opts).is_ok());

        let vs = nn::VarStore::new(Device::Cpu);
        let model = MaxVit::new(&vs.root(), &cfg, &BackboneOptions::classes(3)).expect("224");
        let x = Tensor::randn([1, 3, 64, 96], (Kind::Float, Device::Cpu));
        let feats = tch::no_grad(|| model.features(&x, false));
        let sizes: Vec<(i64, i64)> = feats.iter().map(|f| (f.size()[2], f.size()[3])).collect();
        assert_eq!(sizes, vec![(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]);
        let logits = tch::no_grad(|| model.forward_t(&x, false));
        assert_eq!(logits.size(), vec![1, 3]);
    }
}
