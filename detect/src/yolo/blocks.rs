//! The convolutional blocks the YOLO families share (Ultralytics' `nn/modules/conv.py` and
//! `block.py`, from their published behaviour): `Conv`, `Bottleneck`, `C2f` (whose inner blocks
//! are Bottlenecks in YOLOv8 and Bottlenecks or `C3k` in YOLO11's `C3k2`), `C3`/`C3k` and `SPPF`.
//! Variable paths are those of Ultralytics' state dicts (`cv1.conv.weight`, `m.0.cv2.bn.bias`, …).

use tch::nn::{self, Module, Path};
use tch::Tensor;

use ferrovis_core::memory_format;
use ferrovis_core::nn::BatchNorm2d;

use crate::yolo::psa::PsaBlock;

/// Ultralytics' `Conv`: convolution (no bias, "same" padding, `groups`) → BatchNorm (eps 1e-3,
/// momentum 0.03) → SiLU (or nothing, for the attention's projections). Variables
/// `<p>.conv.weight`, `<p>.bn.*`.
#[derive(Debug)]
pub struct Conv {
    conv: nn::Conv2D,
    bn: BatchNorm2d,
    /// BatchNorm folded into the convolution (weight, bias), for inference after [`Conv::fuse`].
    fused: Option<(Tensor, Tensor)>,
    stride: i64,
    groups: i64,
    act: bool,
}

impl Conv {
    /// A `k`×`k` convolution with stride `s` from `c1` to `c2` channels, followed by SiLU.
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64, s: i64) -> Self {
        Self::with(p, c1, c2, k, s, 1, true)
    }

    /// The general form: `groups` convolution groups, SiLU when `act`.
    pub fn with(p: &Path, c1: i64, c2: i64, k: i64, s: i64, groups: i64, act: bool) -> Self {
        let cfg = nn::ConvConfig {
            stride: s,
            padding: k / 2,
            bias: false,
            groups,
            ..Default::default()
        };
        Conv {
            conv: nn::conv2d(p / "conv", c1, c2, k, cfg),
            bn: BatchNorm2d::with(&(p / "bn"), c2, 1e-3, 0.03),
            fused: None,
            stride: s,
            groups,
            act,
        }
    }

    /// Ultralytics' `DWConv`: a Conv with `gcd(c1, c2)` groups (depthwise when `c1 == c2`).
    pub fn depthwise(p: &Path, c1: i64, c2: i64, k: i64) -> Self {
        Self::with(p, c1, c2, k, 1, gcd(c1, c2), true)
    }

    /// conv → BN → SiLU (in eval mode after [`fuse`](Self::fuse): one convolution with bias → SiLU).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match (train, &self.fused) {
            (false, Some((w, b))) => {
                let (s, p) = (self.stride, w.size()[2] / 2);
                let mut y = x.conv2d(w, Some(b), [s, s], [p, p], [1, 1], self.groups);
                // In place: inference keeps no graph, and the fresh output needs no copy.
                if self.act {
                    y.silu_()
                } else {
                    y
                }
            }
            _ => {
                let y = self.bn.forward_t(&self.conv.forward(x), train);
                if self.act {
                    y.silu()
                } else {
                    y
                }
            }
        }
    }

    /// Folds the BatchNorm's running statistics into a copy of the convolution
    /// (`w·γ/√(σ²+ε)`, `β − μ·γ/√(σ²+ε)`), as Ultralytics' predictor does, with the weight laid
    /// out channels-last when `channels_last`.
    pub fn fuse(&mut self, channels_last: bool) {
        let bn = &self.bn;
        let (w, b) = tch::no_grad(|| {
            let scale = &bn.weight / (&bn.running_var + bn.eps).sqrt();
            let w = &self.conv.ws * scale.view([-1, 1, 1, 1]);
            let b = &bn.bias - &bn.running_mean * &scale;
            (w, b)
        });
        let w = if channels_last {
            memory_format::channels_last(&w).unwrap_or(w)
        } else {
            w
        };
        self.fused = Some((w, b));
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// Two Convs (`cv1` k₁×k₁ to `c2·e` channels, `cv2` k₂×k₂ back to `c2`) with a residual
/// connection when asked and `c1 == c2`.
#[derive(Debug)]
pub struct Bottleneck {
    cv1: Conv,
    cv2: Conv,
    add: bool,
}

impl Bottleneck {
    /// `c1` → `c2` channels through a hidden width `⌊c2·e⌋`, kernels `k`.
    pub fn new(p: &Path, c1: i64, c2: i64, shortcut: bool, k: (i64, i64), e: f64) -> Self {
        let hidden = (c2 as f64 * e) as i64;
        Bottleneck {
            cv1: Conv::new(&(p / "cv1"), c1, hidden, k.0, 1),
            cv2: Conv::new(&(p / "cv2"), hidden, c2, k.1, 1),
            add: shortcut && c1 == c2,
        }
    }

    fn fuse(&mut self, cl: bool) {
        self.cv1.fuse(cl);
        self.cv2.fuse(cl);
    }

    /// `x + cv2(cv1(x))`, or without `x` when there is no shortcut.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.cv2.forward_t(&self.cv1.forward_t(x, train), train);
        if self.add {
            y + x
        } else {
            y
        }
    }
}

/// CSP bottleneck with three convolutions ("C3"): `cv3(cat(m(cv1(x)), cv2(x)))`, `m` a chain of
/// bottlenecks at half width. YOLO11's `C3k` is this block with k×k bottlenecks.
#[derive(Debug)]
pub struct C3 {
    cv1: Conv,
    cv2: Conv,
    cv3: Conv,
    m: Vec<Bottleneck>,
}

impl C3 {
    /// YOLO11's `C3k`: `c1` → `c2` channels, `n` bottlenecks of two `k`×`k` convolutions at
    /// width `c2 / 2`.
    pub fn c3k(p: &Path, c1: i64, c2: i64, n: i64, shortcut: bool, k: i64) -> Self {
        let c = c2 / 2;
        C3 {
            cv1: Conv::new(&(p / "cv1"), c1, c, 1, 1),
            cv2: Conv::new(&(p / "cv2"), c1, c, 1, 1),
            cv3: Conv::new(&(p / "cv3"), 2 * c, c2, 1, 1),
            m: (0..n)
                .map(|i| Bottleneck::new(&(p / "m" / i), c, c, shortcut, (k, k), 1.0))
                .collect(),
        }
    }

    fn fuse(&mut self, cl: bool) {
        for conv in [&mut self.cv1, &mut self.cv2, &mut self.cv3] {
            conv.fuse(cl);
        }
        for m in &mut self.m {
            m.fuse(cl);
        }
    }

    /// `cv3(cat(m(cv1(x)), cv2(x)))`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.cv1.forward_t(x, train);
        for m in &self.m {
            y = m.forward_t(&y, train);
        }
        let side = self.cv2.forward_t(x, train);
        self.cv3.forward_t(&Tensor::cat(&[y, side], 1), train)
    }
}

/// What runs inside a [`C2f`]: a Bottleneck (YOLOv8's C2f, YOLO11's C3k2 at n/s scales), a
/// `C3k` (YOLO11's C3k2 where the layer table or the scale asks for it), or a Bottleneck followed
/// by a PSA block (YOLO26's attention C3k2, `m.i.0`, `m.i.1`).
// Built once per model and never moved in a loop: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Inner {
    /// A residual pair of 3×3 convolutions.
    Bottleneck(Bottleneck),
    /// A C3 with 3×3 bottlenecks.
    C3k(C3),
    /// A Bottleneck, then self-attention.
    BottleneckPsa(Bottleneck, PsaBlock),
}

impl Inner {
    fn fuse(&mut self, cl: bool) {
        match self {
            Inner::Bottleneck(b) => b.fuse(cl),
            Inner::C3k(c) => c.fuse(cl),
            Inner::BottleneckPsa(b, a) => {
                b.fuse(cl);
                a.fuse(cl);
            }
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Inner::Bottleneck(b) => b.forward_t(x, train),
            Inner::C3k(c) => c.forward_t(x, train),
            Inner::BottleneckPsa(b, a) => a.forward_t(&b.forward_t(x, train), train),
        }
    }
}

/// CSP bottleneck with two convolutions ("C2f"): `cv1` splits into two halves, `n` inner blocks
/// run one after another on the second, and every intermediate output is concatenated for `cv2`.
#[derive(Debug)]
pub struct C2f {
    cv1: Conv,
    cv2: Conv,
    m: Vec<Inner>,
    hidden: i64,
}

impl C2f {
    /// YOLOv8's C2f: `c1` → `c2` channels with `n` bottlenecks of `c2 / 2` channels (expansion 1).
    pub fn new(p: &Path, c1: i64, c2: i64, n: i64, shortcut: bool) -> Self {
        Self::with_inner(p, c1, c2, n, 0.5, |p, c| {
            Inner::Bottleneck(Bottleneck::new(p, c, c, shortcut, (3, 3), 1.0))
        })
    }

    /// A C2f of hidden width `⌊c2·e⌋` whose `n` inner blocks `inner(path, width)` builds.
    pub fn with_inner(
        p: &Path,
        c1: i64,
        c2: i64,
        n: i64,
        e: f64,
        inner: impl Fn(&Path, i64) -> Inner,
    ) -> Self {
        let c = (c2 as f64 * e) as i64;
        C2f {
            cv1: Conv::new(&(p / "cv1"), c1, 2 * c, 1, 1),
            cv2: Conv::new(&(p / "cv2"), (2 + n) * c, c2, 1, 1),
            m: (0..n).map(|i| inner(&(p / "m" / i), c)).collect(),
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

    /// `cv2(cat(a, b, m1(b), m2(m1(b)), …))` where `a, b = split(cv1(x))`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut ys = self.cv1.forward_t(x, train).split(self.hidden, 1);
        for m in &self.m {
            let next = m.forward_t(&ys[ys.len() - 1], train);
            ys.push(next);
        }
        self.cv2.forward_t(&Tensor::cat(&ys, 1), train)
    }
}

/// YOLO11's and YOLO26's `C3k2`: a [`C2f`] of hidden width `c2·e` whose inner blocks are
/// Bottlenecks at half their width, `C3k` blocks (two 3×3 bottlenecks) when `c3k`, or a Bottleneck
/// and a PSA block (one head per 64 channels) when `attn`.
pub fn c3k2(p: &Path, c1: i64, c2: i64, n: i64, c3k: bool, e: f64, attn: bool) -> C2f {
    C2f::with_inner(p, c1, c2, n, e, |p, c| {
        if attn {
            Inner::BottleneckPsa(
                Bottleneck::new(&(p / 0), c, c, true, (3, 3), 0.5),
                PsaBlock::new(&(p / 1), c, (c / 64).max(1)),
            )
        } else if c3k {
            Inner::C3k(C3::c3k(p, c, c, 2, true, 3))
        } else {
            Inner::Bottleneck(Bottleneck::new(p, c, c, true, (3, 3), 0.5))
        }
    })
}

/// Spatial pyramid pooling, fast: `n` chained k×k max-pools (three 5×5: receptive fields 5, 9,
/// 13) concatenated with their input. YOLO26's variant drops `cv1`'s activation and adds the
/// input back (`shortcut`).
#[derive(Debug)]
pub struct Sppf {
    cv1: Conv,
    cv2: Conv,
    k: i64,
    n: usize,
    add: bool,
}

impl Sppf {
    /// YOLOv8's and YOLO11's: `c1` → `c2` channels, three pools of window `k`.
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64) -> Self {
        Self::with(p, c1, c2, k, 3, false, true)
    }

    /// YOLO26's `SPPF(c1, c2, k, n, shortcut)`: `n` pools, `cv1` without activation, the input
    /// added back when `shortcut` and the widths agree.
    pub fn yolo26(p: &Path, c1: i64, c2: i64, k: i64, n: usize, shortcut: bool) -> Self {
        Self::with(p, c1, c2, k, n, shortcut && c1 == c2, false)
    }

    fn with(p: &Path, c1: i64, c2: i64, k: i64, n: usize, add: bool, cv1_act: bool) -> Self {
        let c = c1 / 2;
        Sppf {
            cv1: Conv::with(&(p / "cv1"), c1, c, 1, 1, 1, cv1_act),
            cv2: Conv::new(&(p / "cv2"), (n as i64 + 1) * c, c2, 1, 1),
            k,
            n,
            add,
        }
    }

    /// Folds every BatchNorm (see [`Conv::fuse`]).
    pub fn fuse(&mut self, cl: bool) {
        self.cv1.fuse(cl);
        self.cv2.fuse(cl);
    }

    /// `cv2(cat(y, pool(y), pool²(y), …))` with `y = cv1(x)`, plus `x` with the shortcut.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut ys = vec![self.cv1.forward_t(x, train)];
        for _ in 0..self.n {
            let pooled = ys[ys.len() - 1].max_pool2d(
                [self.k, self.k],
                [1, 1],
                [self.k / 2, self.k / 2],
                [1, 1],
                false,
            );
            ys.push(pooled);
        }
        let y = self.cv2.forward_t(&Tensor::cat(&ys, 1), train);
        if self.add {
            y + x
        } else {
            y
        }
    }
}

/// `x` upsampled ×2, nearest neighbour (the necks' `nn.Upsample(None, 2, "nearest")`).
pub fn upsample2(x: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    x.upsample_nearest2d([2 * h, 2 * w], 2.0, 2.0)
}
