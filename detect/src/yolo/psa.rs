//! Position-sensitive attention (Ultralytics' `Attention`, `PSABlock`, `C2PSA`), from their
//! published behaviour: multi-head self-attention over a feature map's pixels, used by YOLO11's
//! `C2PSA` after SPPF and by YOLO26's attention `C3k2` at the last neck stage.

use tch::nn::Path;
use tch::Tensor;

use crate::yolo::blocks::Conv;

/// Multi-head self-attention over the pixels of a feature map, with 1×1 convolutions for the
/// projections and a depthwise 3×3 positional encoding added from the values. Keys and queries
/// are half a head wide (`attn_ratio` 0.5).
#[derive(Debug)]
pub struct Attention {
    qkv: Conv,
    proj: Conv,
    pe: Conv,
    heads: i64,
    key_dim: i64,
    head_dim: i64,
}

impl Attention {
    /// `dim` channels in `heads` heads.
    pub fn new(p: &Path, dim: i64, heads: i64) -> Self {
        let head_dim = dim / heads;
        let key_dim = head_dim / 2;
        let h = dim + 2 * key_dim * heads;
        Attention {
            qkv: Conv::with(&(p / "qkv"), dim, h, 1, 1, 1, false),
            proj: Conv::with(&(p / "proj"), dim, dim, 1, 1, 1, false),
            pe: Conv::with(&(p / "pe"), dim, dim, 3, 1, dim, false),
            heads,
            key_dim,
            head_dim,
        }
    }

    /// Folds every BatchNorm (see [`Conv::fuse`]).
    pub fn fuse(&mut self, cl: bool) {
        for c in [&mut self.qkv, &mut self.proj, &mut self.pe] {
            c.fuse(cl);
        }
    }

    /// `proj(v·softmax(qᵀk/√d)ᵀ + pe(v))`, per head, over all `h·w` positions.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let size = x.size();
        let (c, h, w) = (size[1], size[2], size[3]);
        // The batch as -1, never read: a traced export then takes any batch size.
        let qkv = self.qkv.forward_t(x, train).view([
            -1,
            self.heads,
            2 * self.key_dim + self.head_dim,
            h * w,
        ]);
        let parts = qkv.split_with_sizes([self.key_dim, self.key_dim, self.head_dim], 2);
        let (q, k, v) = (&parts[0], &parts[1], &parts[2]);
        let scale = (self.key_dim as f64).powf(-0.5);
        let attn = (q.transpose(-2, -1).matmul(k) * scale).softmax(-1, q.kind());
        let y = v.matmul(&attn.transpose(-2, -1)).view([-1, c, h, w])
            + self.pe.forward_t(&v.reshape([-1, c, h, w]), train);
        self.proj.forward_t(&y, train)
    }
}

/// A transformer-style block on feature maps: `x + attn(x)`, then `x + ffn(x)` with a 1×1
/// Conv (×2 width, SiLU) and a 1×1 Conv back (no activation).
#[derive(Debug)]
pub struct PsaBlock {
    attn: Attention,
    ffn: [Conv; 2],
}

impl PsaBlock {
    /// `c` channels, `heads` attention heads.
    pub fn new(p: &Path, c: i64, heads: i64) -> Self {
        PsaBlock {
            attn: Attention::new(&(p / "attn"), c, heads),
            ffn: [
                Conv::new(&(p / "ffn" / 0), c, 2 * c, 1, 1),
                Conv::with(&(p / "ffn" / 1), 2 * c, c, 1, 1, 1, false),
            ],
        }
    }

    /// Folds every BatchNorm (see [`Conv::fuse`]).
    pub fn fuse(&mut self, cl: bool) {
        self.attn.fuse(cl);
        for c in &mut self.ffn {
            c.fuse(cl);
        }
    }

    /// The two residual sub-blocks.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = x + self.attn.forward_t(x, train);
        let ffn = self.ffn[1].forward_t(&self.ffn[0].forward_t(&x, train), train);
        x + ffn
    }
}

/// `C2PSA`: `cv1` splits into two halves, `n` PSA blocks (one head per 64 channels) run on the
/// second, `cv2` merges both.
#[derive(Debug)]
pub struct C2Psa {
    cv1: Conv,
    cv2: Conv,
    m: Vec<PsaBlock>,
    hidden: i64,
}

impl C2Psa {
    /// `c` → `c` channels with `n` blocks of width `c / 2`.
    pub fn new(p: &Path, c1: i64, n: i64) -> Self {
        let c = c1 / 2;
        C2Psa {
            cv1: Conv::new(&(p / "cv1"), c1, 2 * c, 1, 1),
            cv2: Conv::new(&(p / "cv2"), 2 * c, c1, 1, 1),
            m: (0..n)
                .map(|i| PsaBlock::new(&(p / "m" / i), c, (c / 64).max(1)))
                .collect(),
            hidden: c,
        }
    }

    /// Folds every BatchNorm (see [`Conv::fuse`]).
    pub fn fuse(&mut self, cl: bool) {
        self.cv1.fuse(cl);
        self.cv2.fuse(cl);
        for m in &mut self.m {
            m.fuse(cl);
        }
    }

    /// `cv2(cat(a, m(b)))` where `a, b = split(cv1(x))`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let halves = self.cv1.forward_t(x, train).split(self.hidden, 1);
        let mut b = halves[1].shallow_clone();
        for m in &self.m {
            b = m.forward_t(&b, train);
        }
        self.cv2
            .forward_t(&Tensor::cat(&[&halves[0], &b], 1), train)
    }
}
