//! DINOv2 (Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", 2023)
//! and its register variants (Darcet et al., "Vision Transformers Need Registers", 2023): the
//! self-supervised ViT-S/B/L/g with 14-pixel patches that transfer-learning work uses as a frozen
//! feature extractor.
//!
//! Names follow the reference implementation's state_dict (`facebookresearch/dinov2`, the
//! `torch.hub` models, `block_chunks=0`), which timm's `vit_*_patch14_dinov2` keeps too:
//! `patch_embed.proj`, `cls_token`, `pos_embed` (with an entry for the class token),
//! `register_tokens`, pre-norm `blocks.{i}` (`norm1`, `attn.qkv` fused, `attn.proj`,
//! `ls1.gamma` layer scale, `norm2`, `mlp.fc1`/`mlp.fc2` or, for ViT-g, the SwiGLU `mlp.w12` and
//! `mlp.w3`, `ls2.gamma`), `norm`. The reference's `mask_token`, used only by the iBOT
//! masked-image loss of pre-training, is not built. The classifier `head` is the linear probe
//! the paper evaluates and transformers' `Dinov2ForImageClassification` has: one linear layer on
//! the class token concatenated with the mean of the patch tokens.
//!
//! The pretrained models are trained at 518² (a 37 × 37 token grid); any input whose sides are
//! multiples of 14 is accepted and the positional embedding resized, which the three published
//! implementations do in three slightly different ways ([`PosEmbedResize`]). Building the model
//! at the size it is used at (`BackboneOptions::image_size`) resizes the checkpoint's embedding
//! once, when it loads.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{
    block_group_stages, Backbone, BackboneOptions, FeatureInfo, Interpolation, PretrainedCfg,
    Stage, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::checkpoint::StateDict;
use crate::error::{Error, Result};
use crate::nn::stochastic_depth;

/// The patch side of every DINOv2 model.
pub const PATCH_SIZE: i64 = 14;

/// The image side the DINOv2 models are pre-trained at (37 × 37 patches).
const PRETRAIN_SIZE: i64 = 518;

/// LayerNorm eps of every block and of the final norm.
const LN_EPS: f64 = 1e-6;

/// The state_dict name of the positional embedding.
const POS_EMBED: &str = "pos_embed";

/// How the `(1 + g², E)` positional embedding is resized to another token grid (bicubic in all
/// three published implementations; they differ in the details, which move the tokens by up to
/// a few 1e-3).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PosEmbedResize {
    /// The reference without registers: the scale factor is `(g' + offset) / g` rather than
    /// `g' / g` (`interpolate_offset` 0.1, a workaround from DINO for floating-point sizes), no
    /// antialiasing.
    ScaleOffset(f64),
    /// To the new size: antialiased when shrinking (the reference's register models, timm) or
    /// not (transformers' `Dinov2Model`).
    Size {
        /// Antialias when shrinking (PyTorch's `antialias=True`).
        antialias: bool,
    },
}

/// A DINOv2 variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Dinov2Config {
    /// Token width.
    pub embed_dim: i64,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads per block.
    pub num_heads: i64,
    /// Hidden width of each block's MLP (of each SwiGLU branch for ViT-g).
    pub mlp_hidden: i64,
    /// ViT-g's SwiGLU feed-forward (`mlp.w12`, `mlp.w3`) instead of a GELU MLP.
    pub swiglu: bool,
    /// Register tokens (0, or 4 for the `_reg` models).
    pub num_register_tokens: i64,
    /// How the positional embedding is resized to another grid.
    pub pos_embed_resize: PosEmbedResize,
}

impl Dinov2Config {
    /// The `torch.hub` models: `dinov2_vits14`, `dinov2_vitb14`, `dinov2_vitl14`,
    /// `dinov2_vitg14`, and the same with `_reg` (4 registers).
    pub fn by_name(name: &str) -> Option<Self> {
        let (base, registers) = match name.strip_suffix("_reg") {
            Some(base) => (base, 4),
            None => (name, 0),
        };
        let (embed_dim, depth, num_heads) = match base {
            "dinov2_vits14" => (384, 12, 6),
            "dinov2_vitb14" => (768, 12, 12),
            "dinov2_vitl14" => (1024, 24, 16),
            "dinov2_vitg14" => (1536, 40, 24),
            _ => return None,
        };
        let swiglu = base == "dinov2_vitg14";
        // SwiGLU keeps two thirds of the 4× hidden width, rounded up to a multiple of 8.
        let mlp_hidden = if swiglu {
            (4 * embed_dim * 2 / 3 + 7) / 8 * 8
        } else {
            4 * embed_dim
        };
        // hubconf: the register models resize by size with antialiasing, the others with the
        // 0.1 offset and without.
        let pos_embed_resize = if registers > 0 {
            PosEmbedResize::Size { antialias: true }
        } else {
            PosEmbedResize::ScaleOffset(0.1)
        };
        Some(Dinov2Config {
            embed_dim,
            depth,
            num_heads,
            mlp_hidden,
            swiglu,
            num_register_tokens: registers,
            pos_embed_resize,
        })
    }
}

/// timm's `trunc_normal_(std=.02)` for linear weights, zero biases (the reference's
/// `init_weights_vit_timm`).
fn linear(p: Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(p, in_dim, out_dim, cfg)
}

fn layer_norm(p: Path, dim: i64) -> nn::LayerNorm {
    let cfg = nn::LayerNormConfig {
        eps: LN_EPS,
        ..Default::default()
    };
    nn::layer_norm(p, vec![dim], cfg)
}

/// Multi-head self-attention with one fused `qkv` projection.
#[derive(Debug)]
struct Attention {
    qkv: nn::Linear,
    proj: nn::Linear,
    num_heads: i64,
}

impl Attention {
    fn new(p: &Path, dim: i64, num_heads: i64) -> Self {
        Attention {
            qkv: linear(p / "qkv", dim, 3 * dim),
            proj: linear(p / "proj", dim, dim),
            num_heads,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let y = crate::nn::packed_self_attention(&self.qkv.forward(x), self.num_heads);
        self.proj.forward(&y)
    }
}

/// The feed-forward half of a block.
#[derive(Debug)]
enum FeedForward {
    /// `fc1`, GELU, `fc2`.
    Mlp { fc1: nn::Linear, fc2: nn::Linear },
    /// `w12` packs the gate and the value branch (gate first): `w3(silu(gate) · value)`.
    SwiGlu { w12: nn::Linear, w3: nn::Linear },
}

impl FeedForward {
    fn new(p: &Path, cfg: &Dinov2Config) -> Self {
        let (e, h) = (cfg.embed_dim, cfg.mlp_hidden);
        if cfg.swiglu {
            FeedForward::SwiGlu {
                w12: linear(p / "w12", e, 2 * h),
                w3: linear(p / "w3", h, e),
            }
        } else {
            FeedForward::Mlp {
                fc1: linear(p / "fc1", e, h),
                fc2: linear(p / "fc2", h, e),
            }
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            FeedForward::Mlp { fc1, fc2 } => fc2.forward(&fc1.forward(x).gelu("none")),
            FeedForward::SwiGlu { w12, w3 } => {
                let halves = w12.forward(x).chunk(2, -1);
                w3.forward(&(halves[0].silu() * &halves[1]))
            }
        }
    }
}

/// Per-channel scaling of a residual branch (`ls1`, `ls2`; CaiT's LayerScale).
#[derive(Debug)]
struct LayerScale {
    gamma: Tensor,
}

impl LayerScale {
    fn new(p: &Path, dim: i64) -> Self {
        // timm's init_values for these models; pretrained weights replace it.
        LayerScale {
            gamma: p.var("gamma", &[dim], nn::Init::Const(1e-5)),
        }
    }
}

/// A pre-norm block (`blocks.{i}`).
#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    attn: Attention,
    ls1: LayerScale,
    norm2: nn::LayerNorm,
    mlp: FeedForward,
    ls2: LayerScale,
    drop_path: f64,
}

impl Block {
    fn new(p: &Path, cfg: &Dinov2Config, drop_path: f64) -> Self {
        let e = cfg.embed_dim;
        Block {
            norm1: layer_norm(p / "norm1", e),
            attn: Attention::new(&(p / "attn"), e, cfg.num_heads),
            ls1: LayerScale::new(&(p / "ls1"), e),
            norm2: layer_norm(p / "norm2", e),
            mlp: FeedForward::new(&(p / "mlp"), cfg),
            ls2: LayerScale::new(&(p / "ls2"), e),
            drop_path,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.attn.forward(&self.norm1.forward(x)) * &self.ls1.gamma;
        let x = stochastic_depth(&y, self.drop_path, train) + x;
        let y = self.mlp.forward(&self.norm2.forward(&x)) * &self.ls2.gamma;
        stochastic_depth(&y, self.drop_path, train) + x
    }
}

/// Resizes the patch part of a `(1, 1 + side², E)` positional embedding to a `gh × gw` grid; the
/// class token's entry is kept.
pub fn resize_pos_embed(pos: &Tensor, gh: i64, gw: i64, how: PosEmbedResize) -> Result<Tensor> {
    let size = pos.size();
    let (seq, e) = match size.as_slice() {
        [1, seq, e] if *seq > 1 => (*seq, *e),
        _ => {
            return Err(Error::Invalid(format!(
                "DINOv2 positional embedding: expected a (1, 1 + g², E) tensor, got {size:?}"
            )))
        }
    };
    let side = ((seq - 1) as f64).sqrt().round() as i64;
    if side * side != seq - 1 {
        return Err(Error::Invalid(format!(
            "DINOv2 positional embedding: {} patch positions are not a square grid",
            seq - 1
        )));
    }
    if gh < 1 || gw < 1 {
        return Err(Error::Invalid(format!(
            "DINOv2 positional embedding: cannot resize to a {gh}×{gw} grid"
        )));
    }
    if (gh, gw) == (side, side) {
        return Ok(pos.shallow_clone());
    }
    let grid = pos
        .narrow(1, 1, side * side)
        .reshape([1, side, side, e])
        .permute([0, 3, 1, 2]);
    let grid = match how {
        PosEmbedResize::ScaleOffset(offset) => grid.upsample_bicubic2d(
            [gh, gw],
            false,
            (gh as f64 + offset) / side as f64,
            (gw as f64 + offset) / side as f64,
        ),
        PosEmbedResize::Size { antialias: true } => {
            grid.internal_upsample_bicubic2d_aa([gh, gw], false, None, None)
        }
        PosEmbedResize::Size { antialias: false } => {
            grid.upsample_bicubic2d([gh, gw], false, None, None)
        }
    };
    let grid = grid.permute([0, 2, 3, 1]).reshape([1, gh * gw, e]);
    Ok(Tensor::cat(&[pos.narrow(1, 0, 1), grid], 1))
}

/// DINOv2 with the reference's names.
///
/// [`BackboneOptions::image_size`] is the square side the positional embedding is built for (518,
/// the pre-training size, by default; a multiple of 14); [`BackboneOptions::stochastic_depth`]
/// is every block's drop-path rate (DINOv2 trains with a uniform rate), 0 by default;
/// [`BackboneOptions::dropout`] is dropout before the linear head.
#[derive(Debug)]
pub struct Dinov2 {
    patch_embed: nn::Conv2D,
    cls_token: Tensor,
    pos_embed: Tensor,
    register_tokens: Option<Tensor>,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    head: Option<nn::Linear>,
    /// Side of the token grid `pos_embed` is built for.
    grid: i64,
    head_dropout: f64,
    cfg: Dinov2Config,
}

impl Dinov2 {
    /// Builds the network under `p`.
    pub fn new(p: &Path, cfg: &Dinov2Config, opts: &BackboneOptions) -> Result<Self> {
        let image_size = opts.image_size.unwrap_or(PRETRAIN_SIZE);
        if image_size < PATCH_SIZE || image_size % PATCH_SIZE != 0 {
            return Err(Error::Invalid(format!(
                "DINOv2: image_size must be a positive multiple of the patch size {PATCH_SIZE}, \
                 got {image_size}"
            )));
        }
        let head_dropout = opts.dropout.unwrap_or(0.0);
        if !(0.0..1.0).contains(&head_dropout) {
            return Err(Error::Invalid(format!(
                "DINOv2: classifier dropout must be in [0, 1), got {head_dropout}"
            )));
        }
        let e = cfg.embed_dim;
        let conv_cfg = nn::ConvConfig {
            stride: PATCH_SIZE,
            ..Default::default()
        };
        let patch_embed = nn::conv2d(p / "patch_embed" / "proj", 3, e, PATCH_SIZE, conv_cfg);
        let small = nn::Init::Randn {
            mean: 0.0,
            stdev: 1e-6,
        };
        let cls_token = p.var("cls_token", &[1, 1, e], small);
        let grid = image_size / PATCH_SIZE;
        let pos_embed = p.var(
            POS_EMBED,
            &[1, 1 + grid * grid, e],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        );
        let register_tokens = (cfg.num_register_tokens > 0)
            .then(|| p.var("register_tokens", &[1, cfg.num_register_tokens, e], small));
        let drop_path = opts.stochastic_depth.unwrap_or(0.0);
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(&(p / "blocks" / i), cfg, drop_path))
            .collect();
        let norm = layer_norm(p / "norm", e);
        let head = (opts.num_classes > 0).then(|| linear(p / "head", 2 * e, opts.num_classes));
        Ok(Dinov2 {
            patch_embed,
            cls_token,
            pos_embed,
            register_tokens,
            blocks,
            norm,
            head,
            grid,
            head_dropout,
            // A source's own resizing (`opts.pos_embed_resize`) over the variant's.
            cfg: Dinov2Config {
                pos_embed_resize: opts.pos_embed_resize.unwrap_or(cfg.pos_embed_resize),
                ..cfg.clone()
            },
        })
    }

    /// The tokens after the final norm `(N, 1 + registers + gh·gw, E)`: class token, register
    /// tokens, patch tokens row by row; and the patch grid's height and width.
    pub fn encode(&self, x: &Tensor, train: bool) -> Result<(Tensor, i64, i64)> {
        let size = x.size();
        if size.len() != 4 || size[2] % PATCH_SIZE != 0 || size[3] % PATCH_SIZE != 0 {
            return Err(Error::Invalid(format!(
                "DINOv2 takes (N, 3, H, W) images with H and W multiples of {PATCH_SIZE}, got \
                 {size:?}"
            )));
        }
        let patches = self.patch_embed.forward(x);
        let (n, gh, gw) = (size[0], size[2] / PATCH_SIZE, size[3] / PATCH_SIZE);
        let patches = patches.flatten(2, 3).transpose(1, 2);
        let pos = if (gh, gw) == (self.grid, self.grid) {
            self.pos_embed.shallow_clone()
        } else {
            resize_pos_embed(&self.pos_embed, gh, gw, self.cfg.pos_embed_resize)?
        };
        let cls = self.cls_token.expand([n, -1, -1], false);
        let tokens = Tensor::cat(&[cls, patches], 1) + pos;
        // The registers go between the class token and the patches, without a position.
        let mut y = match &self.register_tokens {
            Some(r) => Tensor::cat(
                &[
                    tokens.narrow(1, 0, 1),
                    r.expand([n, -1, -1], false),
                    tokens.narrow(1, 1, gh * gw),
                ],
                1,
            ),
            None => tokens,
        };
        for b in &self.blocks {
            y = b.forward_t(&y, train);
        }
        Ok((self.norm.forward(&y), gh, gw))
    }

    /// The class token `(N, E)` and the patch tokens `(N, gh·gw, E)` after the final norm.
    pub fn tokens(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (y, gh, gw) = self.encode(x, train)?;
        let patches = y.narrow(1, 1 + self.cfg.num_register_tokens, gh * gw);
        Ok((y.select(1, 0), patches))
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &Dinov2Config {
        &self.cfg
    }

    /// Encodes, panicking (as a tch forward does) on an input that is not a batch of images with
    /// sides multiple of 14: the [`Backbone`] forwards have no error path.
    fn tokens_or_panic(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        match self.tokens(x, train) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }
}

impl Backbone for Dinov2 {
    /// A checkpoint trained at another size (518 px for every published one) gets its positional
    /// embedding resized to this model's grid with [`Dinov2Config::pos_embed_resize`]; the
    /// reference's `mask_token` is dropped.
    fn adapt_checkpoint(&self, sd: &mut StateDict) -> Result<()> {
        // The reference's `.pth` files hold the pre-training mask token, not built here.
        sd.remove("mask_token");
        if let Some(pos) = sd.get(POS_EMBED) {
            if pos.size() != self.pos_embed.size() {
                let resized =
                    resize_pos_embed(pos, self.grid, self.grid, self.cfg.pos_embed_resize)?;
                sd.insert(POS_EMBED, resized);
            }
        }
        Ok(())
    }

    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.head {
            Some(fc) => fc.forward(&pooled.dropout(self.head_dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    /// One level: the patch tokens after the final norm on their grid, `N × E × H/14 × W/14`.
    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let (_, patches) = self.tokens_or_panic(x, train);
        let (n, e) = (x.size()[0], self.cfg.embed_dim);
        let (gh, gw) = (x.size()[2] / PATCH_SIZE, x.size()[3] / PATCH_SIZE);
        vec![patches.transpose(1, 2).reshape([n, e, gh, gw])]
    }

    /// The linear probe's input `(N, 2E)`: the class token and the mean of the patch tokens.
    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let (cls, patches) = self.tokens_or_panic(x, train);
        let mean = patches.mean_dim(1, false, None);
        Tensor::cat(&[cls, mean], 1)
    }

    /// The class token after the final norm, what DINOv2's k-NN evaluation compares.
    fn knn_features(&self, x: &Tensor, train: bool) -> Tensor {
        self.tokens_or_panic(x, train).0
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        vec![FeatureInfo {
            module: "norm".into(),
            channels: self.cfg.embed_dim,
            stride: PATCH_SIZE,
        }]
    }

    /// DINOv2's evaluation transform: resize 256, centre crop 224, bicubic, ImageNet statistics.
    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            input_size: 224,
            resize_size: 256,
            interpolation: Interpolation::Bicubic,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    fn stages(&self) -> Vec<Stage> {
        let mut stem = vec!["patch_embed", "cls_token", POS_EMBED];
        if self.register_tokens.is_some() {
            stem.push("register_tokens");
        }
        let mut stages = vec![Stage::new("stem", &stem)];
        stages.extend(block_group_stages(
            self.cfg.depth,
            |i| format!("blocks.{i}"),
            "norm",
        ));
        stages.push(Stage::new("head", &["head"]));
        stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_have_the_published_widths() {
        let g = Dinov2Config::by_name("dinov2_vitg14_reg").unwrap();
        assert_eq!((g.embed_dim, g.depth, g.num_heads), (1536, 40, 24));
        assert_eq!(
            (g.mlp_hidden, g.swiglu, g.num_register_tokens),
            (4096, true, 4)
        );
        let s = Dinov2Config::by_name("dinov2_vits14").unwrap();
        assert_eq!((s.mlp_hidden, s.num_register_tokens), (1536, 0));
        assert_eq!(s.pos_embed_resize, PosEmbedResize::ScaleOffset(0.1));
        assert!(Dinov2Config::by_name("dinov2_vits16").is_none());
    }

    #[test]
    fn the_class_entry_survives_a_resize() {
        let pos = Tensor::randn([1, 1 + 37 * 37, 8], (tch::Kind::Float, tch::Device::Cpu));
        for how in [
            PosEmbedResize::ScaleOffset(0.1),
            PosEmbedResize::Size { antialias: true },
            PosEmbedResize::Size { antialias: false },
        ] {
            let r = resize_pos_embed(&pos, 16, 20, how).unwrap();
            assert_eq!(r.size(), [1, 1 + 16 * 20, 8]);
            assert!(r.get(0).get(0).equal(&pos.get(0).get(0)));
        }
        // The three published resizes are three different results (what the parity tests tell
        // apart).
        let [a, b, c] = [
            PosEmbedResize::ScaleOffset(0.1),
            PosEmbedResize::Size { antialias: true },
            PosEmbedResize::Size { antialias: false },
        ]
        .map(|how| resize_pos_embed(&pos, 16, 16, how).unwrap());
        for (x, y) in [(&a, &b), (&a, &c), (&b, &c)] {
            let d = (x - y).abs().max().double_value(&[]);
            assert!(d > 1e-3, "{d}");
        }
        let err = resize_pos_embed(
            &pos.narrow(1, 0, 11),
            4,
            4,
            PosEmbedResize::ScaleOffset(0.1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a square grid"), "{err}");
    }
}
