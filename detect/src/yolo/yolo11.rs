//! YOLO11 (Ultralytics, 2024): YOLOv8's topology with `C3k2` blocks in place of C2f, a `C2PSA`
//! self-attention block after SPPF, and a lighter class branch in the head (depthwise-separable
//! stages).
//!
//! Built from the published layer table (`yolo11.yaml`), one struct per block, every variable at
//! the path of Ultralytics' `DetectionModel.state_dict()` (`model.10.m.0.attn.qkv.conv.weight`,
//! `model.23.cv3.0.0.0.conv.weight`, …), so its checkpoints load by name.
//!
//! | i  | from     | block       | channels | repeats | note                         |
//! |----|----------|-------------|----------|---------|------------------------------|
//! | 0  | -1       | Conv 3×3 s2 | 64       |         | P1/2                         |
//! | 1  | -1       | Conv 3×3 s2 | 128      |         | P2/4                         |
//! | 2  | -1       | C3k2        | 256      | 2       | e 0.25                       |
//! | 3  | -1       | Conv 3×3 s2 | 256      |         | P3/8                         |
//! | 4  | -1       | C3k2        | 512      | 2       | e 0.25                       |
//! | 5  | -1       | Conv 3×3 s2 | 512      |         | P4/16                        |
//! | 6  | -1       | C3k2        | 512      | 2       | C3k inside                   |
//! | 7  | -1       | Conv 3×3 s2 | 1024     |         | P5/32                        |
//! | 8  | -1       | C3k2        | 1024     | 2       | C3k inside                   |
//! | 9  | -1       | SPPF k5     | 1024     |         |                              |
//! | 10 | -1       | C2PSA       | 1024     | 2       |                              |
//! | 11 | -1       | Upsample ×2 |          |         |                              |
//! | 12 | -1, 6    | Concat      |          |         |                              |
//! | 13 | -1       | C3k2        | 512      | 2       |                              |
//! | 14 | -1       | Upsample ×2 |          |         |                              |
//! | 15 | -1, 4    | Concat      |          |         |                              |
//! | 16 | -1       | C3k2        | 256      | 2       | P3 out                       |
//! | 17 | -1       | Conv 3×3 s2 | 256      |         |                              |
//! | 18 | -1, 13   | Concat      |          |         |                              |
//! | 19 | -1       | C3k2        | 512      | 2       | P4 out                       |
//! | 20 | -1       | Conv 3×3 s2 | 512      |         |                              |
//! | 21 | -1, 10   | Concat      |          |         |                              |
//! | 22 | -1       | C3k2        | 1024     | 2       | P5 out, C3k inside           |
//! | 23 | 16,19,22 | Detect      |          |         | strides 8/16/32, DW cls branch |
//!
//! Every C3k2 keeps its residual shortcuts (the neck's too, unlike YOLOv8's C2f), and at scales
//! m, l and x every C3k2 runs C3k blocks, whatever the table says (Ultralytics' rule). Scales
//! multiply repeats and channels as YOLOv8's do (see [`Scale`](crate::yolo::model::Scale)).

use tch::nn::Path;
use tch::Tensor;

use crate::yolo::blocks::{upsample2, Bottleneck, C2f, Conv, Inner, Sppf, C3};
use crate::yolo::head::{ClassBranch, Detect};
use crate::yolo::model::{input_layout, YoloConfig};

/// YOLO11's `C3k2`: a [`C2f`] of hidden width `c2·e` whose inner blocks are Bottlenecks at half
/// their width, or `C3k` blocks (two 3×3 bottlenecks) when `c3k`.
pub fn c3k2(p: &Path, c1: i64, c2: i64, n: i64, c3k: bool, e: f64) -> C2f {
    C2f::with_inner(p, c1, c2, n, e, |p, c| {
        if c3k {
            Inner::C3k(C3::c3k(p, c, c, 2, true, 3))
        } else {
            Inner::Bottleneck(Bottleneck::new(p, c, c, true, (3, 3), 0.5))
        }
    })
}

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

    fn fuse(&mut self, cl: bool) {
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

    fn fuse(&mut self, cl: bool) {
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
                .map(|i| PsaBlock::new(&(p / "m" / i), c, c / 64))
                .collect(),
            hidden: c,
        }
    }

    fn fuse(&mut self, cl: bool) {
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

/// YOLO11: backbone, neck and head, variables under `model.<i>`.
#[derive(Debug)]
pub struct Yolo11 {
    /// What was built.
    pub config: YoloConfig,
    conv0: Conv,
    conv1: Conv,
    c3k2_2: C2f,
    conv3: Conv,
    c3k2_4: C2f,
    conv5: Conv,
    c3k2_6: C2f,
    conv7: Conv,
    c3k2_8: C2f,
    sppf9: Sppf,
    c2psa10: C2Psa,
    c3k2_13: C2f,
    c3k2_16: C2f,
    conv17: Conv,
    c3k2_19: C2f,
    conv20: Conv,
    c3k2_22: C2f,
    /// The head (`model.23`).
    pub detect: Detect,
    /// Eval-mode inputs go channels-last (set by [`fuse`](Self::fuse)).
    channels_last: bool,
}

impl Yolo11 {
    /// Builds the model under `p` (pass the VarStore root: variables go to `p/model/<i>`).
    pub fn new(p: &Path, config: YoloConfig) -> Self {
        let s = config.scale;
        let m = p / "model";
        let ch = |c| s.channels(c);
        let n = s.repeats(2);
        // Ultralytics turns C3k on in every C3k2 of the larger scales.
        let c3k = |table: bool| table || matches!(s.name, 'm' | 'l' | 'x');
        let (c0, c1, c2, c3, c5, c7) = (ch(64), ch(128), ch(256), ch(256), ch(512), ch(1024));
        Yolo11 {
            config,
            conv0: Conv::new(&(&m / 0), 3, c0, 3, 2),
            conv1: Conv::new(&(&m / 1), c0, c1, 3, 2),
            c3k2_2: c3k2(&(&m / 2), c1, c2, n, c3k(false), 0.25),
            conv3: Conv::new(&(&m / 3), c2, c3, 3, 2),
            c3k2_4: c3k2(&(&m / 4), c3, c5, n, c3k(false), 0.25),
            conv5: Conv::new(&(&m / 5), c5, c5, 3, 2),
            c3k2_6: c3k2(&(&m / 6), c5, c5, n, c3k(true), 0.5),
            conv7: Conv::new(&(&m / 7), c5, c7, 3, 2),
            c3k2_8: c3k2(&(&m / 8), c7, c7, n, c3k(true), 0.5),
            sppf9: Sppf::new(&(&m / 9), c7, c7, 5),
            c2psa10: C2Psa::new(&(&m / 10), c7, n),
            c3k2_13: c3k2(&(&m / 13), c7 + c5, c5, n, c3k(false), 0.5),
            c3k2_16: c3k2(&(&m / 16), c5 + c5, c3, n, c3k(false), 0.5),
            conv17: Conv::new(&(&m / 17), c3, c3, 3, 2),
            c3k2_19: c3k2(&(&m / 19), c3 + c5, c5, n, c3k(false), 0.5),
            conv20: Conv::new(&(&m / 20), c5, c5, 3, 2),
            c3k2_22: c3k2(&(&m / 22), c5 + c7, c7, n, c3k(true), 0.5),
            detect: Detect::new(
                &(&m / 23),
                config.num_classes,
                [c3, c5, c7],
                ClassBranch::DepthwiseSeparable,
            ),
            channels_last: false,
        }
    }

    /// The three feature maps the head reads (P3, P4, P5: layers 16, 19, 22).
    pub fn neck_features(&self, x: &Tensor, train: bool) -> [Tensor; 3] {
        let x = self.conv1.forward_t(&self.conv0.forward_t(x, train), train);
        let x = self.c3k2_2.forward_t(&x, train);
        let p3 = self
            .c3k2_4
            .forward_t(&self.conv3.forward_t(&x, train), train);
        let p4 = self
            .c3k2_6
            .forward_t(&self.conv5.forward_t(&p3, train), train);
        let x = self
            .c3k2_8
            .forward_t(&self.conv7.forward_t(&p4, train), train);
        let p5 = self
            .c2psa10
            .forward_t(&self.sppf9.forward_t(&x, train), train);
        let h13 = self
            .c3k2_13
            .forward_t(&Tensor::cat(&[upsample2(&p5), p4], 1), train);
        let out3 = self
            .c3k2_16
            .forward_t(&Tensor::cat(&[upsample2(&h13), p3], 1), train);
        let down = self.conv17.forward_t(&out3, train);
        let out4 = self.c3k2_19.forward_t(&Tensor::cat(&[down, h13], 1), train);
        let down = self.conv20.forward_t(&out4, train);
        let out5 = self.c3k2_22.forward_t(&Tensor::cat(&[down, p5], 1), train);
        [out3, out4, out5]
    }

    /// Raw head outputs per level: `(batch, 64 + classes, h/s, w/s)` for s = 8, 16, 32.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let x = input_layout(x, !train && self.channels_last);
        let [a, b, c] = self.neck_features(&x, train);
        self.detect.forward_t([&a, &b, &c], train)
    }

    /// Prepares for inference (see [`Yolo::fuse`](crate::yolo::model::Yolo::fuse)).
    pub fn fuse(&mut self, channels_last: bool) {
        for conv in [
            &mut self.conv0,
            &mut self.conv1,
            &mut self.conv3,
            &mut self.conv5,
            &mut self.conv7,
            &mut self.conv17,
            &mut self.conv20,
        ] {
            conv.fuse(channels_last);
        }
        for block in [
            &mut self.c3k2_2,
            &mut self.c3k2_4,
            &mut self.c3k2_6,
            &mut self.c3k2_8,
            &mut self.c3k2_13,
            &mut self.c3k2_16,
            &mut self.c3k2_19,
            &mut self.c3k2_22,
        ] {
            block.fuse(channels_last);
        }
        self.sppf9.fuse(channels_last);
        self.c2psa10.fuse(channels_last);
        self.detect.fuse(channels_last);
        self.channels_last = channels_last;
    }
}
