//! Swin Transformer V1 (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using
//! Shifted Windows", 2021) and V2 (Liu et al., "Swin Transformer V2: Scaling Up Capacity and
//! Resolution", 2022) with torchvision's names: `features.0` the 4×4 patch embedding (convolution
//! `features.0.0`, LayerNorm `features.0.2`), `features.1/3/5/7` the stages of blocks
//! (`features.S.B.{norm1,attn,norm2,mlp}`), `features.2/4/6` the patch merging between them,
//! `norm` the final LayerNorm and `head` the classifier.
//!
//! As in torchvision, and unlike the papers' fixed-resolution code: feature maps are padded to a
//! multiple of the window (so any input of at least 32 pixels works), a window at least as large
//! as the padded map is not shifted, and the classifier has no dropout. V2 keeps the paper's
//! ImageNet-1k design (cosine attention with a learned per-head temperature, residual post-norm,
//! the log-spaced continuous position bias, LayerNorm after the merging reduction, no key bias)
//! but normalises the position-bias coordinates by the window itself, without the paper's
//! pretrained-window option. The blocks work channels-last (N×H×W×C) as torchvision's;
//! [`Backbone::features`] hands out N×C×H×W views of them.

use tch::nn::{self, Init, Module, Path};
use tch::{Kind, Tensor};

use super::{
    global_pool, Backbone, BackboneOptions, FeatureInfo, Interpolation, PretrainedCfg, Stage,
    IMAGENET_MEAN, IMAGENET_STD,
};
use crate::nn::{conv2d, stochastic_depth, Conv2dSpec};

/// Which generation of blocks a Swin Transformer is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwinVersion {
    /// Pre-norm blocks, scaled dot-product attention with a learned relative position bias table.
    V1,
    /// Post-norm blocks, cosine attention with a learned temperature, a continuous position bias
    /// from a small MLP, and `PatchMergingV2`.
    V2,
}

/// A Swin Transformer variant, as torchvision's `swin_*` builders define it.
#[derive(Debug, Clone, PartialEq)]
pub struct SwinConfig {
    /// Block generation.
    pub version: SwinVersion,
    /// Channels after the patch embedding; each stage doubles them.
    pub embed_dim: i64,
    /// Blocks per stage.
    pub depths: [usize; 4],
    /// Attention heads per stage.
    pub num_heads: [i64; 4],
    /// Side of the square attention window (7 for V1, 8 for V2).
    pub window: i64,
    /// Stochastic-depth probability of the last block (rising linearly from 0 at the first).
    pub stochastic_depth: f64,
    /// Evaluation crop size of the IMAGENET1K_V1 weights.
    pub crop: i64,
    /// Shorter side before the crop.
    pub resize: i64,
    /// torchvision's `dropout` argument: after the attention projection and in the MLPs (0 in
    /// every torchvision builder).
    pub dropout: f64,
}

impl SwinConfig {
    /// `swin_t`, `swin_s`, `swin_b`, `swin_v2_t`, `swin_v2_s`, `swin_v2_b` as torchvision defines
    /// them.
    pub fn by_name(name: &str) -> Option<Self> {
        use SwinVersion::{V1, V2};
        let (version, embed_dim, depth3, sd, crop, resize) = match name {
            "swin_t" => (V1, 96, 6, 0.2, 224, 232),
            "swin_s" => (V1, 96, 18, 0.3, 224, 246),
            "swin_b" => (V1, 128, 18, 0.5, 224, 238),
            "swin_v2_t" => (V2, 96, 6, 0.2, 256, 260),
            "swin_v2_s" => (V2, 96, 18, 0.3, 256, 260),
            "swin_v2_b" => (V2, 128, 18, 0.5, 256, 272),
            _ => return None,
        };
        let h = embed_dim / 32;
        Some(SwinConfig {
            version,
            embed_dim,
            depths: [2, 2, depth3, 2],
            num_heads: [h, 2 * h, 4 * h, 8 * h],
            window: if version == V1 { 7 } else { 8 },
            stochastic_depth: sd,
            crop,
            resize,
            dropout: 0.0,
        })
    }
}

/// torchvision initialises every `nn.Linear` of a Swin Transformer with `trunc_normal_(std=0.02)`
/// and zero bias. Its truncation at ±2 lies a hundred standard deviations out, so a plain normal
/// draw is the same distribution.
fn linear(p: &Path, c_in: i64, c_out: i64, bias: bool) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
        bs_init: Some(Init::Const(0.0)),
        bias,
    };
    nn::linear(p, c_in, c_out, cfg)
}

fn layer_norm(p: &Path, dim: i64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![dim], Default::default())
}

/// For each pair of positions in a `window`×`window` window, the row of their offset in a
/// (2·window−1)² table: torchvision's `relative_position_index`, flattened.
pub(crate) fn relative_position_index(window: i64) -> Vec<i64> {
    let n = window * window;
    let span = 2 * window - 1;
    let mut index = Vec::with_capacity((n * n) as usize);
    for i in 0..n {
        for j in 0..n {
            let dh = i / window - j / window + window - 1;
            let dw = i % window - j % window + window - 1;
            index.push(dh * span + dw);
        }
    }
    index
}

/// V2's `relative_coords_table` (1 × (2w−1) × (2w−1) × 2): offsets scaled to ±8 and compressed
/// as sign·log2(1 + |x|)/3. Built with the same float32 tensor operations as torchvision so the
/// buffer is bit-identical.
fn relative_coords_table(window: i64, device: tch::Device) -> Tensor {
    let span = 2 * window - 1;
    let r = Tensor::arange_start(-(window - 1), window, (Kind::Float, device))
        / (window - 1) as f64
        * 8.0;
    let r = r.sign() * (r.abs() + 1.0).log2() / 3.0;
    let rows = r.view([span, 1]).expand([span, span], false);
    let cols = r.view([1, span]).expand([span, span], false);
    Tensor::stack(&[rows, cols], -1).unsqueeze(0)
}

/// The additive mask (nW × 1 × L × L, 0 or −100) that keeps shifted windows from attending across
/// the seams the cyclic shift creates: positions of one window attend only to positions that came
/// from the same region of the padded `ph`×`pw` map. Built on the device without a host copy.
fn shift_mask(
    ph: i64,
    pw: i64,
    window: i64,
    shift_h: i64,
    shift_w: i64,
    kind: Kind,
    device: tch::Device,
) -> Tensor {
    // Region 0, 1 or 2 along one axis: torchvision's slices [0, n−w), [n−w, n−s), [n−s, n).
    let region = |n: i64, s: i64| {
        let a = Tensor::arange(n, (Kind::Int64, device));
        a.ge(n - window).to_kind(Kind::Int64) + a.ge(n - s).to_kind(Kind::Int64)
    };
    let ids = region(ph, shift_h).unsqueeze(1) * 3 + region(pw, shift_w).unsqueeze(0);
    let (nh, nw) = (ph / window, pw / window);
    let ids = ids
        .view([nh, window, nw, window])
        .permute([0, 2, 1, 3])
        .reshape([nh * nw, window * window]);
    let differ = (ids.unsqueeze(1) - ids.unsqueeze(2)).ne(0);
    Tensor::zeros(differ.size(), (kind, device))
        .masked_fill(&differ, -100.0)
        .unsqueeze(1)
}

/// How a block's attention computes its position bias.
#[derive(Debug)]
enum PositionBias {
    /// V1: a learned (2w−1)² × heads table.
    Table(Tensor),
    /// V2: the continuous position bias MLP (`cpb_mlp.0`, ReLU, `cpb_mlp.2`) applied to the
    /// `relative_coords_table` buffer, and the learned log-temperature of the cosine attention.
    Continuous {
        coords_table: Tensor,
        fc1: nn::Linear,
        fc2: nn::Linear,
        logit_scale: Tensor,
    },
}

/// (Shifted) window multi-head self-attention, torchvision's `ShiftedWindowAttention(V2)`.
#[derive(Debug)]
struct WindowAttention {
    qkv: nn::Linear,
    proj: nn::Linear,
    bias: PositionBias,
    /// `relative_position_index`, a persistent int64 buffer.
    index: Tensor,
    window: i64,
    shift: i64,
    heads: i64,
    dropout: f64,
}

impl WindowAttention {
    fn new(
        p: &Path,
        dim: i64,
        heads: i64,
        window: i64,
        shift: i64,
        version: SwinVersion,
        dropout: f64,
    ) -> Self {
        let qkv = linear(&(p / "qkv"), dim, 3 * dim, true);
        let proj = linear(&(p / "proj"), dim, dim, true);
        let span = 2 * window - 1;
        let bias = match version {
            SwinVersion::V1 => PositionBias::Table(p.var(
                "relative_position_bias_table",
                &[span * span, heads],
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )),
            SwinVersion::V2 => PositionBias::Continuous {
                logit_scale: p.var("logit_scale", &[heads, 1, 1], Init::Const(10f64.ln())),
                fc1: linear(&(p / "cpb_mlp" / "0"), 2, 512, true),
                fc2: linear(&(p / "cpb_mlp" / "2"), 512, heads, false),
                coords_table: p.add(
                    "relative_coords_table",
                    relative_coords_table(window, p.device()),
                    false,
                ),
            },
        };
        let index = Tensor::from_slice(&relative_position_index(window)).to_device(p.device());
        WindowAttention {
            qkv,
            proj,
            bias,
            index: p.add("relative_position_index", index, false),
            window,
            shift,
            heads,
            dropout,
        }
    }

    /// The position bias, 1 × heads × L × L.
    fn position_bias(&self) -> Tensor {
        let n = self.window * self.window;
        let (table, v2) = match &self.bias {
            PositionBias::Table(t) => (t.shallow_clone(), false),
            PositionBias::Continuous {
                coords_table,
                fc1,
                fc2,
                ..
            } => (
                fc2.forward(&fc1.forward(coords_table).relu())
                    .view([-1, self.heads]),
                true,
            ),
        };
        let bias = table
            .index_select(0, &self.index)
            .view([n, n, self.heads])
            .permute([2, 0, 1])
            .unsqueeze(0);
        if v2 {
            bias.sigmoid() * 16.0
        } else {
            bias
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (b, h, w, c) = x.size4().unwrap_or_default();
        let ws = self.window;
        let (pad_b, pad_r) = ((ws - h % ws) % ws, (ws - w % ws) % ws);
        let mut x = if pad_b > 0 || pad_r > 0 {
            x.constant_pad_nd([0, 0, 0, pad_r, 0, pad_b])
        } else {
            x.shallow_clone()
        };
        let (ph, pw) = (h + pad_b, w + pad_r);
        // A window covering the whole (padded) map sees everything already: shifting it would
        // only wrap the map around.
        let shift_h = if ws >= ph { 0 } else { self.shift };
        let shift_w = if ws >= pw { 0 } else { self.shift };
        let shifted = shift_h > 0 || shift_w > 0;
        if shifted {
            x = x.roll([-shift_h, -shift_w], [1, 2]);
        }
        let (nh, nw) = (ph / ws, pw / ws);
        let (windows, l, d) = (b * nh * nw, ws * ws, c / self.heads);
        let x = x
            .view([b, nh, ws, nw, ws, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([windows, l, c]);

        let qkv_bias = self.qkv.bs.as_ref().map(|bias| match &self.bias {
            // V2 has no key bias: torchvision keeps the parameter but zeroes that third of it in
            // every forward (so it also gets no gradient).
            PositionBias::Continuous { .. } => Tensor::cat(
                &[
                    bias.narrow(0, 0, c),
                    bias.narrow(0, c, c).zeros_like(),
                    bias.narrow(0, 2 * c, c),
                ],
                0,
            ),
            PositionBias::Table(_) => bias.shallow_clone(),
        });
        let qkv = x
            .linear(&self.qkv.ws, qkv_bias.as_ref())
            .reshape([windows, l, 3, self.heads, d])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));

        let mut mask = self.position_bias();
        if shifted {
            // The mask is per window, the bias per head: their sum, repeated over the batch, is
            // one 4-D mask, which the fused attention kernel takes (a 5-D one it does not).
            let nwin = nh * nw;
            mask = (mask + shift_mask(ph, pw, ws, shift_h, shift_w, q.kind(), q.device()))
                .unsqueeze(0)
                .expand([b, nwin, self.heads, l, l], false)
                .reshape([windows, self.heads, l, l]);
        }
        let out = match &self.bias {
            PositionBias::Table(_) => Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(&mask),
                0.0,
                false,
                (d as f64).powf(-0.5),
                false,
            ),
            PositionBias::Continuous { logit_scale, .. } => {
                // Cosine attention: unit-length queries and keys, the per-head temperature
                // (at most 100) folded into the queries.
                let normalize =
                    |t: &Tensor| t / t.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12);
                let scale = logit_scale.clamp_max(100f64.ln()).exp();
                Tensor::scaled_dot_product_attention(
                    &(normalize(&q) * scale),
                    &normalize(&k),
                    &v,
                    Some(&mask),
                    0.0,
                    false,
                    1.0,
                    false,
                )
            }
        };
        let out = out.transpose(1, 2).reshape([windows, l, c]);
        let out = self.proj.forward(&out).dropout(self.dropout, train);

        let mut out = out
            .view([b, nh, nw, ws, ws, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b, ph, pw, c]);
        if shifted {
            out = out.roll([shift_h, shift_w], [1, 2]);
        }
        if pad_b > 0 || pad_r > 0 {
            out = out.narrow(1, 0, h).narrow(2, 0, w);
        }
        out
    }
}

/// A Swin block: window attention (shifted in every other block) and a GELU MLP (`mlp.0`,
/// `mlp.3`), each a residual branch with stochastic depth; LayerNorm before each branch (V1) or at
/// its end (V2).
#[derive(Debug)]
struct SwinBlock {
    norm1: nn::LayerNorm,
    attn: WindowAttention,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    post_norm: bool,
    drop_prob: f64,
    dropout: f64,
}

impl SwinBlock {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: &Path,
        dim: i64,
        heads: i64,
        window: i64,
        shift: i64,
        version: SwinVersion,
        drop_prob: f64,
        dropout: f64,
    ) -> Self {
        SwinBlock {
            norm1: layer_norm(&(p / "norm1"), dim),
            attn: WindowAttention::new(&(p / "attn"), dim, heads, window, shift, version, dropout),
            norm2: layer_norm(&(p / "norm2"), dim),
            fc1: linear(&(p / "mlp" / "0"), dim, 4 * dim, true),
            fc2: linear(&(p / "mlp" / "3"), 4 * dim, dim, true),
            post_norm: version == SwinVersion::V2,
            drop_prob,
            dropout,
        }
    }

    fn mlp(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self
            .fc1
            .forward(x)
            .gelu("none")
            .dropout(self.dropout, train);
        self.fc2.forward(&y).dropout(self.dropout, train)
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let p = self.drop_prob;
        let y = if self.post_norm {
            x + stochastic_depth(
                &self.norm1.forward(&self.attn.forward_t(x, train)),
                p,
                train,
            )
        } else {
            x + stochastic_depth(
                &self.attn.forward_t(&self.norm1.forward(x), train),
                p,
                train,
            )
        };
        let m = if self.post_norm {
            self.norm2.forward(&self.mlp(&y, train))
        } else {
            self.mlp(&self.norm2.forward(&y), train)
        };
        y + stochastic_depth(&m, p, train)
    }
}

/// Patch merging: each 2×2 neighbourhood (odd sides zero-padded) concatenated to 4C channels and
/// reduced to 2C by `reduction`, with `norm` before (V1) or after (V2) the reduction.
#[derive(Debug)]
struct PatchMerging {
    norm: nn::LayerNorm,
    reduction: nn::Linear,
    norm_after: bool,
}

impl PatchMerging {
    fn new(p: &Path, dim: i64, version: SwinVersion) -> Self {
        let norm_after = version == SwinVersion::V2;
        PatchMerging {
            norm: layer_norm(&(p / "norm"), if norm_after { 2 * dim } else { 4 * dim }),
            reduction: linear(&(p / "reduction"), 4 * dim, 2 * dim, false),
            norm_after,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, h, w, c) = x.size4().unwrap_or_default();
        let x = if h % 2 == 1 || w % 2 == 1 {
            x.constant_pad_nd([0, 0, 0, w % 2, 0, h % 2])
        } else {
            x.shallow_clone()
        };
        let (h2, w2) = ((h + 1) / 2, (w + 1) / 2);
        // torchvision concatenates x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]:
        // the row offset varies fastest, hence (column offset, row offset) before the channels.
        let x = x
            .view([b, h2, 2, w2, 2, c])
            .permute([0, 1, 3, 4, 2, 5])
            .reshape([b, h2, w2, 4 * c]);
        if self.norm_after {
            self.norm.forward(&self.reduction.forward(&x))
        } else {
            self.reduction.forward(&self.norm.forward(&x))
        }
    }
}

/// Swin Transformer V1 or V2 with torchvision's names.
#[derive(Debug)]
pub struct SwinTransformer {
    patch_embed: nn::Conv2D,
    patch_norm: nn::LayerNorm,
    stages: Vec<Vec<SwinBlock>>,
    /// The merging before stages 2, 3 and 4 (`features.2/4/6`).
    merges: Vec<PatchMerging>,
    norm: nn::LayerNorm,
    /// `None` for an encoder (`num_classes` 0).
    head: Option<nn::Linear>,
    /// Dropout before `head` ([`BackboneOptions::dropout`]).
    head_dropout: f64,
    info: Vec<FeatureInfo>,
    cfg: SwinConfig,
}

impl SwinTransformer {
    /// Builds the network under `p`. `opts.dropout` is dropout before the classifier, as for every
    /// family (0 by default: torchvision's head has none); torchvision's own `dropout` argument
    /// (after the attention projection and in the MLPs) is [`SwinConfig::dropout`], 0 as in every
    /// builder.
    /// `opts.image_size` is not needed: windows are padded, so any input of at least 32 pixels
    /// works with the same weights.
    pub fn new(p: &Path, cfg: &SwinConfig, opts: &BackboneOptions) -> Self {
        let f = p / "features";
        let e = cfg.embed_dim;
        let patch_embed = conv2d(
            &(&f / 0 / 0),
            3,
            e,
            Conv2dSpec::new(4)
                .stride(4)
                .padding(0)
                .bias(true)
                .pytorch_default_init(),
        );
        let patch_norm = layer_norm(&(&f / 0 / 2), e);
        let sd_prob = opts.stochastic_depth.unwrap_or(cfg.stochastic_depth);
        let dropout = cfg.dropout;
        let total: usize = cfg.depths.iter().sum();
        let mut block_id = 0;
        let (mut stages, mut merges, mut info) = (Vec::new(), Vec::new(), Vec::new());
        for (s, (&depth, &heads)) in cfg.depths.iter().zip(&cfg.num_heads).enumerate() {
            let dim = e << s;
            let sp = &f / (2 * s + 1);
            let mut blocks = Vec::with_capacity(depth);
            for i in 0..depth {
                let shift = if i % 2 == 0 { 0 } else { cfg.window / 2 };
                let drop = sd_prob * block_id as f64 / (total - 1) as f64;
                blocks.push(SwinBlock::new(
                    &(&sp / i),
                    dim,
                    heads,
                    cfg.window,
                    shift,
                    cfg.version,
                    drop,
                    dropout,
                ));
                block_id += 1;
            }
            stages.push(blocks);
            info.push(FeatureInfo {
                module: format!("features.{}", 2 * s + 1),
                channels: dim,
                stride: 4 << s,
            });
            if s < 3 {
                merges.push(PatchMerging::new(&(&f / (2 * s + 2)), dim, cfg.version));
            }
        }
        let last = e << 3;
        let norm = layer_norm(&(p / "norm"), last);
        let head =
            (opts.num_classes > 0).then(|| linear(&(p / "head"), last, opts.num_classes, true));
        SwinTransformer {
            patch_embed,
            patch_norm,
            stages,
            merges,
            norm,
            head,
            head_dropout: opts.dropout.unwrap_or(0.0),
            info,
            cfg: cfg.clone(),
        }
    }

    /// The stages' outputs (N×H×W×C), the first `levels` of them.
    fn stage_outputs(&self, x: &Tensor, train: bool, levels: usize) -> Vec<Tensor> {
        let mut y = self
            .patch_norm
            .forward(&self.patch_embed.forward(x).permute([0, 2, 3, 1]));
        let mut out = Vec::with_capacity(levels);
        for (s, blocks) in self.stages.iter().enumerate().take(levels) {
            if s > 0 {
                y = self.merges[s - 1].forward(&y);
            }
            for b in blocks {
                y = b.forward_t(&y, train);
            }
            out.push(y.shallow_clone());
        }
        out
    }
}

impl Backbone for SwinTransformer {
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.head {
            Some(fc) => fc.forward(&pooled.dropout(self.head_dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        self.stage_outputs(x, train, self.stages.len())
            .iter()
            .map(|y| y.permute([0, 3, 1, 2]))
            .collect()
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self
            .stage_outputs(x, train, self.stages.len())
            .pop()
            .unwrap_or_else(|| x.shallow_clone());
        global_pool(&self.norm.forward(&last).permute([0, 3, 1, 2]))
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            input_size: self.cfg.crop,
            resize_size: self.cfg.resize,
            interpolation: Interpolation::Bicubic,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    fn stages(&self) -> Vec<Stage> {
        vec![
            Stage::new("stem", &["features.0"]),
            Stage::new("stage1", &["features.1"]),
            Stage::new("stage2", &["features.2", "features.3"]),
            Stage::new("stage3", &["features.4", "features.5"]),
            Stage::new("stage4", &["features.6", "features.7", "norm"]),
            Stage::new("head", &["head"]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_position_index_matches_torchvision() {
        // torchvision's buffer for a 2×2 window.
        assert_eq!(
            relative_position_index(2),
            vec![4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]
        );
    }

    #[test]
    fn odd_and_small_inputs_run_every_level() {
        for name in ["swin_t", "swin_v2_t"] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let cfg = SwinConfig::by_name(name).expect("known");
            let m = SwinTransformer::new(&vs.root(), &cfg, &BackboneOptions::classes(3));
            for side in [32, 45, 70] {
                let x = Tensor::randn([1, 3, side, side + 6], (Kind::Float, tch::Device::Cpu));
                let feats = tch::no_grad(|| m.features(&x, false));
                let chans: Vec<i64> = feats.iter().map(|f| f.size()[1]).collect();
                assert_eq!(chans, vec![96, 192, 384, 768], "{name} at {side}");
                let logits = tch::no_grad(|| m.forward_t(&x, false));
                assert_eq!(logits.size(), vec![1, 3], "{name} at {side}");
            }
        }
    }
}
