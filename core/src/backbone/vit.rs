//! Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
//! Recognition at Scale", 2020) as torchvision builds it: ViT-B/16, B/32, L/16, L/32 and H/14.
//!
//! Names follow torchvision: `conv_proj` (the patch embedding), `class_token`,
//! `encoder.pos_embedding`, `encoder.layers.encoder_layer_{i}` pre-norm blocks (`ln_1`,
//! `self_attention` as `nn.MultiheadAttention` with one packed `in_proj_weight`, `ln_2`,
//! `mlp.0`/`mlp.3`), `encoder.ln`, `heads.head`. Where torchvision differs from the paper: the
//! classifier is a single linear layer initialised to zero (the paper's pre-training head has a
//! tanh hidden layer, torchvision's `representation_size`, which none of its builders sets),
//! LayerNorm eps is 1e-6, and there is no stochastic depth.
//!
//! The model is built for one square `image_size` (224 unless [`BackboneOptions::image_size`]
//! says otherwise), which fixes the length of the positional embedding. torchvision asserts that
//! every input has that size; here an input of another size (any multiple of the patch size, not
//! necessarily square) is accepted and the positional embedding is resized on the fly as
//! [`interpolate_pos_embedding`] does, so a forward never panics on it. That is a convenience for
//! inspection, not a substitute for building the model at the size it is used at: the resize is
//! redone on every call. To run a checkpoint trained at one size at another, build the model at
//! the new size and resize the checkpoint's embedding once with [`interpolate_embeddings`].

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{
    block_group_stages, Backbone, BackboneOptions, FeatureInfo, Interpolation, PretrainedCfg,
    Stage, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::checkpoint::StateDict;
use crate::error::{Error, Result};

/// The input side every torchvision ViT builder uses unless weights say otherwise.
const DEFAULT_IMAGE_SIZE: i64 = 224;

/// torchvision's `partial(nn.LayerNorm, eps=1e-6)`.
const LN_EPS: f64 = 1e-6;

/// The state_dict name of the positional embedding.
const POS_EMBEDDING: &str = "encoder.pos_embedding";

/// A Vision Transformer variant.
#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    /// Side of the square patches (the stride of the token grid).
    pub patch_size: i64,
    /// Number of encoder blocks.
    pub num_layers: usize,
    /// Attention heads per block.
    pub num_heads: i64,
    /// Token width.
    pub hidden_dim: i64,
    /// Hidden width of each block's MLP.
    pub mlp_dim: i64,
    /// Evaluation crop size of the reference weights' transforms.
    pub crop: i64,
    /// Shorter side before the crop.
    pub resize: i64,
    /// Interpolation of the resize.
    pub interpolation: Interpolation,
    /// torchvision's `dropout` argument: after the positional embedding, after each attention
    /// and inside each MLP (0 in every torchvision builder).
    pub dropout: f64,
}

impl VitConfig {
    /// `vit_b_16`, `vit_b_32`, `vit_l_16`, `vit_l_32` and `vit_h_14` as torchvision defines
    /// them. The transforms are those of `IMAGENET1K_V1`, except for `vit_h_14`, which has no
    /// such weights: its `IMAGENET1K_SWAG_E2E_V1` (518 px, bicubic).
    pub fn by_name(name: &str) -> Option<Self> {
        use Interpolation::{Bicubic, Bilinear};
        let (patch_size, num_layers, num_heads, hidden_dim, mlp_dim, crop, resize, interpolation) =
            match name {
                "vit_b_16" => (16, 12, 12, 768, 3072, 224, 256, Bilinear),
                "vit_b_32" => (32, 12, 12, 768, 3072, 224, 256, Bilinear),
                "vit_l_16" => (16, 24, 16, 1024, 4096, 224, 242, Bilinear),
                "vit_l_32" => (32, 24, 16, 1024, 4096, 224, 256, Bilinear),
                "vit_h_14" => (14, 32, 16, 1280, 5120, 518, 518, Bicubic),
                _ => return None,
            };
        Some(VitConfig {
            patch_size,
            num_layers,
            num_heads,
            hidden_dim,
            mlp_dim,
            crop,
            resize,
            interpolation,
            dropout: 0.0,
        })
    }
}

/// Dropout that costs nothing when it is off (torchvision's ViT defaults to 0 everywhere).
fn dropout(x: Tensor, p: f64, train: bool) -> Tensor {
    if train && p > 0.0 {
        x.dropout(p, train)
    } else {
        x
    }
}

/// `nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)` used as self-attention
/// without weights: one packed input projection, fused attention, the output projection.
#[derive(Debug)]
struct SelfAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: nn::Linear,
    num_heads: i64,
}

impl SelfAttention {
    fn new(p: &Path, dim: i64, num_heads: i64) -> Self {
        // MultiheadAttention._reset_parameters: Xavier over the packed (3E, E) matrix, zero biases;
        // out_proj keeps nn.Linear's default weight but its bias is zeroed.
        let bound = (6.0 / (dim + 3 * dim) as f64).sqrt();
        let in_proj_weight = p.var(
            "in_proj_weight",
            &[3 * dim, dim],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        let in_proj_bias = p.zeros("in_proj_bias", &[3 * dim]);
        let mut out_proj = crate::nn::linear(&(p / "out_proj"), dim, dim);
        if let Some(b) = out_proj.bs.as_mut() {
            tch::no_grad(|| {
                let _ = b.zero_();
            });
        }
        SelfAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            num_heads,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let qkv = x.linear(&self.in_proj_weight, Some(&self.in_proj_bias));
        // torchvision's attention_dropout is 0, in training too.
        self.out_proj
            .forward(&crate::nn::packed_self_attention(&qkv, self.num_heads))
    }
}

/// torchvision's `MLPBlock`: `mlp.0` linear, GELU, dropout, `mlp.3` linear, dropout.
#[derive(Debug)]
struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Mlp {
    fn new(p: &Path, dim: i64, hidden: i64) -> Self {
        let xavier = |fan_in: i64, fan_out: i64| {
            let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
            nn::LinearConfig {
                ws_init: nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
                bs_init: Some(nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1e-6,
                }),
                bias: true,
            }
        };
        Mlp {
            fc1: nn::linear(p / "0", dim, hidden, xavier(dim, hidden)),
            fc2: nn::linear(p / "3", hidden, dim, xavier(hidden, dim)),
        }
    }

    fn forward_t(&self, x: &Tensor, p: f64, train: bool) -> Tensor {
        let y = dropout(self.fc1.forward(x).gelu("none"), p, train);
        dropout(self.fc2.forward(&y), p, train)
    }
}

/// A pre-norm encoder block (`encoder.layers.encoder_layer_{i}`).
#[derive(Debug)]
struct EncoderBlock {
    ln_1: nn::LayerNorm,
    self_attention: SelfAttention,
    ln_2: nn::LayerNorm,
    mlp: Mlp,
    dropout: f64,
}

impl EncoderBlock {
    fn new(p: &Path, cfg: &VitConfig, dropout: f64) -> Self {
        let ln = |name: &str| layer_norm(&(p / name), cfg.hidden_dim);
        EncoderBlock {
            ln_1: ln("ln_1"),
            self_attention: SelfAttention::new(
                &(p / "self_attention"),
                cfg.hidden_dim,
                cfg.num_heads,
            ),
            ln_2: ln("ln_2"),
            mlp: Mlp::new(&(p / "mlp"), cfg.hidden_dim, cfg.mlp_dim),
            dropout,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.self_attention.forward(&self.ln_1.forward(x));
        let x = dropout(y, self.dropout, train) + x;
        let y = self
            .mlp
            .forward_t(&self.ln_2.forward(&x), self.dropout, train);
        x + y
    }
}

fn layer_norm(p: &Path, dim: i64) -> nn::LayerNorm {
    let cfg = nn::LayerNormConfig {
        eps: LN_EPS,
        ..Default::default()
    };
    nn::layer_norm(p, vec![dim], cfg)
}

/// Resizes the patch part of a `(1, 1 + side², E)` positional embedding to a `gh × gw` grid as
/// torchvision's `interpolate_embeddings` does; the class token's entry is kept.
fn resize_pos_grid(pos: &Tensor, side: i64, gh: i64, gw: i64) -> Tensor {
    let e = pos.size()[2];
    let grid = pos
        .narrow(1, 1, side * side)
        .permute([0, 2, 1])
        .reshape([1, e, side, side])
        .upsample_bicubic2d([gh, gw], true, None, None)
        .reshape([1, e, gh * gw])
        .permute([0, 2, 1]);
    Tensor::cat(&[pos.narrow(1, 0, 1), grid], 1)
}

/// torchvision's `interpolate_embeddings` for one tensor: a `(1, 1 + g², E)` positional embedding
/// resized to `(1, 1 + new_grid², E)`, the class token's entry kept and the `g × g` grid of patch
/// entries resized bicubically with aligned corners. Loads a checkpoint trained at one image size
/// into a model built at another (`new_grid` = image_size / patch_size).
pub fn interpolate_pos_embedding(pos: &Tensor, new_grid: i64) -> Result<Tensor> {
    let size = pos.size();
    let (seq, side) = match size.as_slice() {
        [1, seq, _] if *seq >= 1 => {
            let side = ((*seq - 1) as f64).sqrt().round() as i64;
            (*seq, side)
        }
        _ => {
            return Err(Error::Invalid(format!(
                "ViT positional embedding: expected a (1, 1 + g², E) tensor, got {size:?}"
            )))
        }
    };
    if side * side != seq - 1 || side == 0 {
        return Err(Error::Invalid(format!(
            "ViT positional embedding: {} patch positions are not a square grid",
            seq - 1
        )));
    }
    if new_grid < 1 {
        return Err(Error::Invalid(format!(
            "ViT positional embedding: the new grid side must be positive, got {new_grid}"
        )));
    }
    if new_grid == side {
        return Ok(pos.shallow_clone());
    }
    Ok(resize_pos_grid(pos, side, new_grid, new_grid))
}

/// torchvision's `interpolate_embeddings(image_size, patch_size, state_dict)`: resizes the
/// checkpoint's `encoder.pos_embedding` in place for a model built at `image_size`, so that it
/// loads by name. A state dict without that tensor is left as it is.
pub fn interpolate_embeddings(sd: &mut StateDict, image_size: i64, patch_size: i64) -> Result<()> {
    if patch_size < 1 || image_size < patch_size {
        return Err(Error::Invalid(format!(
            "ViT: image size {image_size} holds no {patch_size}-pixel patch"
        )));
    }
    if let Some(pos) = sd.get(POS_EMBEDDING) {
        let resized = interpolate_pos_embedding(pos, image_size / patch_size)?;
        sd.insert(POS_EMBEDDING, resized);
    }
    Ok(())
}

/// Vision Transformer with torchvision's names.
///
/// [`BackboneOptions::dropout`] is dropout before the classifier, as for every family (0 by
/// default: torchvision's head has none); torchvision's own `dropout` argument (after the
/// positional embedding, after each attention and inside each MLP) is [`VitConfig::dropout`], 0
/// as in every builder. [`BackboneOptions::stochastic_depth`] is ignored, torchvision's ViT
/// having no stochastic depth.
#[derive(Debug)]
pub struct VisionTransformer {
    conv_proj: nn::Conv2D,
    class_token: Tensor,
    pos_embedding: Tensor,
    blocks: Vec<EncoderBlock>,
    ln: nn::LayerNorm,
    /// `None` for an encoder (`num_classes` 0).
    head: Option<nn::Linear>,
    /// Side of the token grid the model is built for.
    grid: i64,
    dropout: f64,
    head_dropout: f64,
    cfg: VitConfig,
}

impl VisionTransformer {
    /// Builds the network under `p` for square inputs of `opts.image_size` (default 224), which
    /// must be a multiple of the patch size.
    pub fn new(p: &Path, cfg: &VitConfig, opts: &BackboneOptions) -> Result<Self> {
        let image_size = opts.image_size.unwrap_or(DEFAULT_IMAGE_SIZE);
        if image_size < cfg.patch_size || image_size % cfg.patch_size != 0 {
            return Err(Error::Invalid(format!(
                "ViT: image_size must be a positive multiple of the patch size {}, got {image_size}",
                cfg.patch_size
            )));
        }
        let (dropout, head_dropout) = (cfg.dropout, opts.dropout.unwrap_or(0.0));
        for (what, p) in [("dropout", dropout), ("classifier dropout", head_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::Invalid(format!(
                    "ViT: {what} must be in [0, 1), got {p}"
                )));
            }
        }
        let (e, ps) = (cfg.hidden_dim, cfg.patch_size);
        let fan_in = 3 * ps * ps;
        // trunc_normal_(std=√(1/fan_in)) truncates at ±2 absolute, some 50σ out: a plain normal.
        let conv_cfg = nn::ConvConfig {
            stride: ps,
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: (1.0 / fan_in as f64).sqrt(),
            },
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        let conv_proj = nn::conv2d(p / "conv_proj", 3, e, ps, conv_cfg);
        let class_token = p.zeros("class_token", &[1, 1, e]);
        let grid = image_size / ps;
        let enc = p / "encoder";
        let pos_embedding = enc.var(
            "pos_embedding",
            &[1, grid * grid + 1, e],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        );
        let layers = &enc / "layers";
        let blocks = (0..cfg.num_layers)
            .map(|i| EncoderBlock::new(&(&layers / format!("encoder_layer_{i}")), cfg, dropout))
            .collect();
        let ln = layer_norm(&(&enc / "ln"), e);
        let zeros = nn::LinearConfig {
            ws_init: nn::Init::Const(0.0),
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let head = (opts.num_classes > 0)
            .then(|| nn::linear(p / "heads" / "head", e, opts.num_classes, zeros));
        Ok(VisionTransformer {
            conv_proj,
            class_token,
            pos_embedding,
            blocks,
            ln,
            head,
            grid,
            dropout,
            head_dropout,
            cfg: cfg.clone(),
        })
    }

    /// The encoder's output `(N, 1 + gh·gw, E)` (class token first, after `encoder.ln`) and the
    /// token grid's height and width.
    pub fn encode(&self, x: &Tensor, train: bool) -> (Tensor, i64, i64) {
        let patches = self.conv_proj.forward(x);
        let size = patches.size();
        let (gh, gw) = (size[2], size[3]);
        let patches = patches.flatten(2, 3).transpose(1, 2);
        // One class token per image, its batch taken from a tensor rather than a number read
        // off one: a traced ONNX export then takes any batch.
        let cls = self.class_token.expand_as(&patches.narrow(1, 0, 1));
        let pos = if gh == self.grid && gw == self.grid {
            self.pos_embedding.shallow_clone()
        } else {
            resize_pos_grid(&self.pos_embedding, self.grid, gh, gw)
        };
        let mut y = dropout(Tensor::cat(&[cls, patches], 1) + pos, self.dropout, train);
        for b in &self.blocks {
            y = b.forward_t(&y, train);
        }
        (self.ln.forward(&y), gh, gw)
    }
}

impl Backbone for VisionTransformer {
    /// A checkpoint trained at another image size (torchvision's 224 weights into a model built
    /// for 384, or the reverse) gets its positional embedding interpolated to this model's grid,
    /// as torchvision's `interpolate_embeddings` does before it loads.
    fn adapt_checkpoint(&self, sd: &mut StateDict) -> Result<()> {
        match sd.get(POS_EMBEDDING) {
            Some(pos) if pos.size() != self.pos_embedding.size() => {
                interpolate_embeddings(sd, self.grid * self.cfg.patch_size, self.cfg.patch_size)
            }
            _ => Ok(()),
        }
    }

    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.head {
            Some(fc) => fc.forward(&dropout(pooled.shallow_clone(), self.head_dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    /// One level: the patch tokens after `encoder.ln` on their grid, `N × E × H/p × W/p`.
    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let (y, gh, gw) = self.encode(x, train);
        let (n, e) = (y.size()[0], self.cfg.hidden_dim);
        let grid = y
            .narrow(1, 1, gh * gw)
            .transpose(1, 2)
            .reshape([n, e, gh, gw]);
        vec![grid]
    }

    /// The class token after `encoder.ln`, what the classifier reads.
    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        self.encode(x, train).0.select(1, 0)
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        vec![FeatureInfo {
            module: "encoder".into(),
            channels: self.cfg.hidden_dim,
            stride: self.cfg.patch_size,
        }]
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            input_size: self.cfg.crop,
            resize_size: self.cfg.resize,
            interpolation: self.cfg.interpolation,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::new(
            "stem",
            &["conv_proj", "class_token", POS_EMBEDDING],
        )];
        stages.extend(block_group_stages(
            self.cfg.num_layers,
            |i| format!("encoder.layers.encoder_layer_{i}"),
            "encoder.ln",
        ));
        stages.push(Stage::new("head", &["heads"]));
        stages
    }
}
