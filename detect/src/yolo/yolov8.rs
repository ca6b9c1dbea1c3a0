//! YOLOv8 (Ultralytics, 2023): a CSP-Darknet backbone of C2f blocks and SPPF, a PAN-FPN neck and
//! an anchor-free decoupled head whose box branch predicts each side's distance as a distribution
//! over 16 bins (DFL).
//!
//! Built from the published layer table (`yolov8.yaml`), one struct per block. Every variable sits
//! at the path of Ultralytics' `DetectionModel.state_dict()` (`model.0.conv.weight`, …,
//! `model.22.cv3.2.2.bias`, `model.22.dfl.conv.weight`), so its checkpoints load by name.
//!
//! | i  | from    | block    | channels | repeats | note          |
//! |----|---------|----------|----------|---------|---------------|
//! | 0  | -1      | Conv 3×3 s2 | 64    |         | P1/2          |
//! | 1  | -1      | Conv 3×3 s2 | 128   |         | P2/4          |
//! | 2  | -1      | C2f      | 128      | 3       | shortcut      |
//! | 3  | -1      | Conv 3×3 s2 | 256   |         | P3/8          |
//! | 4  | -1      | C2f      | 256      | 6       | shortcut      |
//! | 5  | -1      | Conv 3×3 s2 | 512   |         | P4/16         |
//! | 6  | -1      | C2f      | 512      | 6       | shortcut      |
//! | 7  | -1      | Conv 3×3 s2 | 1024  |         | P5/32         |
//! | 8  | -1      | C2f      | 1024     | 3       | shortcut      |
//! | 9  | -1      | SPPF k5  | 1024     |         |               |
//! | 10 | -1      | Upsample ×2 |       |         |               |
//! | 11 | -1, 6   | Concat   |          |         |               |
//! | 12 | -1      | C2f      | 512      | 3       |               |
//! | 13 | -1      | Upsample ×2 |       |         |               |
//! | 14 | -1, 4   | Concat   |          |         |               |
//! | 15 | -1      | C2f      | 256      | 3       | P3 out        |
//! | 16 | -1      | Conv 3×3 s2 | 256   |         |               |
//! | 17 | -1, 12  | Concat   |          |         |               |
//! | 18 | -1      | C2f      | 512      | 3       | P4 out        |
//! | 19 | -1      | Conv 3×3 s2 | 512   |         |               |
//! | 20 | -1, 9   | Concat   |          |         |               |
//! | 21 | -1      | C2f      | 1024     | 3       | P5 out        |
//! | 22 | 15,18,21| Detect   |          |         | strides 8/16/32 |
//!
//! A scale multiplies repeats by `depth` (`max(round(n·depth), 1)`) and channels by `width` after
//! capping them at `max_channels`, rounded up to a multiple of 8.

use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use ferrovis_core::memory_format;
use ferrovis_core::nn::BatchNorm2d;

/// Bins of the distance distribution of each box side.
pub const REG_MAX: i64 = 16;
/// Strides of the three detection levels (P3, P4, P5).
pub const STRIDES: [i64; 3] = [8, 16, 32];
/// Index of the Detect layer in `model.*`.
pub const DETECT_INDEX: usize = 22;

/// A model size: n, s, m, l or x.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// `n`, `s`, `m`, `l` or `x`.
    pub name: char,
    /// Repeat multiplier.
    pub depth: f64,
    /// Channel multiplier.
    pub width: f64,
    /// Channel cap applied before `width`.
    pub max_channels: i64,
}

impl Scale {
    /// The five published scales.
    pub const ALL: [Scale; 5] = [
        Scale::new('n', 0.33, 0.25, 1024),
        Scale::new('s', 0.33, 0.50, 1024),
        Scale::new('m', 0.67, 0.75, 768),
        Scale::new('l', 1.00, 1.00, 512),
        Scale::new('x', 1.00, 1.25, 512),
    ];

    const fn new(name: char, depth: f64, width: f64, max_channels: i64) -> Self {
        Scale {
            name,
            depth,
            width,
            max_channels,
        }
    }

    /// The scale called `name` (`n` … `x`, or `yolov8n` … `yolov8x`).
    pub fn by_name(name: &str) -> Option<Scale> {
        let letter = name.strip_prefix("yolov8").unwrap_or(name);
        let mut chars = letter.chars();
        let (c, rest) = (chars.next()?, chars.as_str());
        if !rest.is_empty() {
            return None;
        }
        Self::ALL.into_iter().find(|s| s.name == c)
    }

    /// Channels of a layer nominally `c` wide.
    pub fn channels(&self, c: i64) -> i64 {
        let scaled = (c.min(self.max_channels) as f64 * self.width).ceil() as i64;
        (scaled + 7) / 8 * 8
    }

    /// Repeats of a block nominally repeated `n` times.
    pub fn repeats(&self, n: i64) -> i64 {
        if n > 1 {
            ((n as f64 * self.depth).round() as i64).max(1)
        } else {
            n
        }
    }
}

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YoloConfig {
    /// Model size.
    pub scale: Scale,
    /// Number of classes.
    pub num_classes: i64,
}

/// Ultralytics' `Conv`: convolution (no bias, "same" padding) → BatchNorm (eps 1e-3, momentum
/// 0.03) → SiLU. Variables `<p>.conv.weight`, `<p>.bn.*`.
#[derive(Debug)]
pub struct Conv {
    conv: nn::Conv2D,
    bn: BatchNorm2d,
    /// BatchNorm folded into the convolution (weight, bias), for inference after [`Conv::fuse`].
    fused: Option<(Tensor, Tensor)>,
    stride: i64,
}

impl Conv {
    /// A `k`×`k` convolution with stride `s` from `c1` to `c2` channels.
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64, s: i64) -> Self {
        let cfg = nn::ConvConfig {
            stride: s,
            padding: k / 2,
            bias: false,
            ..Default::default()
        };
        Conv {
            conv: nn::conv2d(p / "conv", c1, c2, k, cfg),
            bn: BatchNorm2d::with(&(p / "bn"), c2, 1e-3, 0.03),
            fused: None,
            stride: s,
        }
    }

    /// conv → BN → SiLU (in eval mode after [`fuse`](Self::fuse): one convolution with bias → SiLU).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if let (false, Some((w, b))) = (train, &self.fused) {
            let (s, p) = (self.stride, w.size()[2] / 2);
            return x.conv2d(w, Some(b), [s, s], [p, p], [1, 1], 1).silu();
        }
        self.bn.forward_t(&self.conv.forward(x), train).silu()
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

/// Two 3×3 Convs with an optional residual connection (when asked and shapes allow).
#[derive(Debug)]
pub struct Bottleneck {
    cv1: Conv,
    cv2: Conv,
    add: bool,
}

impl Bottleneck {
    /// `c` → `c` channels (C2f's bottlenecks have expansion 1).
    pub fn new(p: &Path, c: i64, shortcut: bool) -> Self {
        Bottleneck {
            cv1: Conv::new(&(p / "cv1"), c, c, 3, 1),
            cv2: Conv::new(&(p / "cv2"), c, c, 3, 1),
            add: shortcut,
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

/// CSP bottleneck with two convolutions ("C2f"): `cv1` splits into two halves, `n` bottlenecks
/// run one after another on the second, and every intermediate output is concatenated for `cv2`.
#[derive(Debug)]
pub struct C2f {
    cv1: Conv,
    cv2: Conv,
    m: Vec<Bottleneck>,
    hidden: i64,
}

impl C2f {
    /// `c1` → `c2` channels with `n` bottlenecks of `c2 / 2` channels.
    pub fn new(p: &Path, c1: i64, c2: i64, n: i64, shortcut: bool) -> Self {
        let c = c2 / 2;
        let m = (0..n)
            .map(|i| Bottleneck::new(&(p / "m" / i), c, shortcut))
            .collect();
        C2f {
            cv1: Conv::new(&(p / "cv1"), c1, 2 * c, 1, 1),
            cv2: Conv::new(&(p / "cv2"), (2 + n) * c, c2, 1, 1),
            m,
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

/// Spatial pyramid pooling, fast: three chained 5×5 max-pools (receptive fields 5, 9, 13)
/// concatenated with their input.
#[derive(Debug)]
pub struct Sppf {
    cv1: Conv,
    cv2: Conv,
    k: i64,
}

impl Sppf {
    /// `c1` → `c2` channels, pooling window `k`.
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64) -> Self {
        let c = c1 / 2;
        Sppf {
            cv1: Conv::new(&(p / "cv1"), c1, c, 1, 1),
            cv2: Conv::new(&(p / "cv2"), 4 * c, c2, 1, 1),
            k,
        }
    }

    fn fuse(&mut self, cl: bool) {
        self.cv1.fuse(cl);
        self.cv2.fuse(cl);
    }

    /// `cv2(cat(y, pool(y), pool²(y), pool³(y)))` with `y = cv1(x)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut ys = vec![self.cv1.forward_t(x, train)];
        for _ in 0..3 {
            let pooled = ys[ys.len() - 1].max_pool2d(
                [self.k, self.k],
                [1, 1],
                [self.k / 2, self.k / 2],
                [1, 1],
                false,
            );
            ys.push(pooled);
        }
        self.cv2.forward_t(&Tensor::cat(&ys, 1), train)
    }
}

/// One branch of the head at one level: Conv 3×3, Conv 3×3, then a plain 1×1 convolution with
/// bias (`<p>.0`, `<p>.1`, `<p>.2`).
#[derive(Debug)]
pub struct HeadBranch {
    conv0: Conv,
    conv1: Conv,
    out: nn::Conv2D,
}

impl HeadBranch {
    fn new(p: &Path, c_in: i64, hidden: i64, c_out: i64) -> Self {
        HeadBranch {
            conv0: Conv::new(&(p / "0"), c_in, hidden, 3, 1),
            conv1: Conv::new(&(p / "1"), hidden, hidden, 3, 1),
            out: nn::conv2d(p / "2", hidden, c_out, 1, Default::default()),
        }
    }

    fn fuse(&mut self, cl: bool) {
        self.conv0.fuse(cl);
        self.conv1.fuse(cl);
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.out
            .forward(&self.conv1.forward_t(&self.conv0.forward_t(x, train), train))
    }
}

/// The decoupled head: per level a box branch (`cv2.i`, 4·16 distance logits) and a class branch
/// (`cv3.i`, one logit per class). The fixed DFL projection `dfl.conv.weight` (0…15) exists as a
/// variable so checkpoints keep Ultralytics' layout; [`expected_distance`] computes its product.
#[derive(Debug)]
pub struct Detect {
    /// Box branches, one per level.
    pub cv2: Vec<HeadBranch>,
    /// Class branches, one per level.
    pub cv3: Vec<HeadBranch>,
    /// Classes predicted.
    pub num_classes: i64,
}

impl Detect {
    /// A head over levels of `channels` input channels.
    pub fn new(p: &Path, num_classes: i64, channels: [i64; 3]) -> Self {
        let c2 = (channels[0] / 4).max(16).max(4 * REG_MAX);
        let c3 = channels[0].max(num_classes.min(100));
        let cv2: Vec<HeadBranch> = channels
            .iter()
            .enumerate()
            .map(|(i, &c)| HeadBranch::new(&(p / "cv2" / i), c, c2, 4 * REG_MAX))
            .collect();
        let cv3: Vec<HeadBranch> = channels
            .iter()
            .enumerate()
            .map(|(i, &c)| HeadBranch::new(&(p / "cv3" / i), c, c3, num_classes))
            .collect();
        // Ultralytics' bias prior: box logits 1.0; class logits so that about 5 objects per
        // 640² image are expected at each level before training.
        tch::no_grad(|| {
            for ((a, b), s) in cv2.iter().zip(&cv3).zip(STRIDES) {
                if let Some(bias) = &a.out.bs {
                    let _ = bias.shallow_clone().fill_(1.0);
                }
                if let Some(bias) = &b.out.bs {
                    let prior = (5.0 / num_classes as f64 / (640.0 / s as f64).powi(2)).ln();
                    let _ = bias.shallow_clone().fill_(prior);
                }
            }
        });
        // A parameter in Ultralytics' state dict that never trains.
        let proj = Tensor::arange(REG_MAX, (Kind::Float, p.device())).view([1, REG_MAX, 1, 1]);
        let _ = (p / "dfl" / "conv")
            .var_copy("weight", &proj)
            .requires_grad_(false);
        Detect {
            cv2,
            cv3,
            num_classes,
        }
    }

    /// Raw outputs per level, each `(batch, 64 + classes, h, w)`: box distance logits, then class
    /// logits.
    pub fn forward_t(&self, feats: [&Tensor; 3], train: bool) -> Vec<Tensor> {
        feats
            .iter()
            .zip(self.cv2.iter().zip(&self.cv3))
            .map(|(x, (box_branch, cls_branch))| {
                Tensor::cat(
                    &[
                        box_branch.forward_t(x, train),
                        cls_branch.forward_t(x, train),
                    ],
                    1,
                )
            })
            .collect()
    }
}

/// The expected distance of each side, in grid cells, from bin logits `(…, 4·16)`: `(…, 4)`, the
/// softmax over the 16 bins weighted by the bin values 0…15 (what the fixed DFL convolution
/// computes; training and inference share this one definition).
pub fn expected_distance(logits: &Tensor) -> Tensor {
    let bins = Tensor::arange(REG_MAX, (logits.kind(), logits.device()));
    // unflatten, not view with sizes read from the input: a traced export then takes any batch.
    logits
        .unflatten(-1, [4, REG_MAX])
        .softmax(-1, logits.kind())
        .matmul(&bins)
}

/// Anchor points (cell centres, in grid units of each level) and their strides, for levels of the
/// given `(h, w)`: `((anchors, 2) as (x, y), (anchors, 1))`, level after level, row-major.
pub fn make_anchors(sizes: &[(i64, i64)], device: tch::Device) -> (Tensor, Tensor) {
    let mut points = Vec::new();
    let mut strides = Vec::new();
    for (&(h, w), s) in sizes.iter().zip(STRIDES) {
        let opts = (Kind::Float, device);
        let sx = Tensor::arange(w, opts) + 0.5;
        let sy = Tensor::arange(h, opts) + 0.5;
        let grid = Tensor::meshgrid_indexing(&[sy, sx], "ij");
        points.push(Tensor::stack(&[&grid[1], &grid[0]], -1).view([-1, 2]));
        strides.push(Tensor::full([h * w, 1], s as f64, opts));
    }
    (Tensor::cat(&points, 0), Tensor::cat(&strides, 0))
}

/// Boxes from side distances around anchor points, both `(…, anchors, 2|4)` or `(…, 2|4,
/// anchors)` along `dim`: `xyxy` corners, or centre and size.
pub fn dist_to_box(distance: &Tensor, anchors: &Tensor, xywh: bool, dim: i64) -> Tensor {
    let lt_rb = distance.chunk(2, dim);
    let x1y1 = anchors - &lt_rb[0];
    let x2y2 = anchors + &lt_rb[1];
    if xywh {
        Tensor::cat(&[(&x1y1 + &x2y2) / 2.0, &x2y2 - &x1y1], dim)
    } else {
        Tensor::cat(&[x1y1, x2y2], dim)
    }
}

/// YOLOv8: backbone, neck and head, variables under `model.<i>`.
#[derive(Debug)]
pub struct YoloV8 {
    /// What was built.
    pub config: YoloConfig,
    conv0: Conv,
    conv1: Conv,
    c2f2: C2f,
    conv3: Conv,
    c2f4: C2f,
    conv5: Conv,
    c2f6: C2f,
    conv7: Conv,
    c2f8: C2f,
    sppf9: Sppf,
    c2f12: C2f,
    c2f15: C2f,
    conv16: Conv,
    c2f18: C2f,
    conv19: Conv,
    c2f21: C2f,
    /// The head (`model.22`).
    pub detect: Detect,
    /// Eval-mode inputs go channels-last (set by [`fuse`](Self::fuse)).
    channels_last: bool,
}

impl YoloV8 {
    /// Builds the model under `p` (pass the VarStore root: variables go to `p/model/<i>`).
    pub fn new(p: &Path, config: YoloConfig) -> Self {
        let s = config.scale;
        let m = p / "model";
        let ch = |c| s.channels(c);
        let n = |r| s.repeats(r);
        let (c0, c1, c3, c5, c7) = (ch(64), ch(128), ch(256), ch(512), ch(1024));
        YoloV8 {
            config,
            conv0: Conv::new(&(&m / 0), 3, c0, 3, 2),
            conv1: Conv::new(&(&m / 1), c0, c1, 3, 2),
            c2f2: C2f::new(&(&m / 2), c1, c1, n(3), true),
            conv3: Conv::new(&(&m / 3), c1, c3, 3, 2),
            c2f4: C2f::new(&(&m / 4), c3, c3, n(6), true),
            conv5: Conv::new(&(&m / 5), c3, c5, 3, 2),
            c2f6: C2f::new(&(&m / 6), c5, c5, n(6), true),
            conv7: Conv::new(&(&m / 7), c5, c7, 3, 2),
            c2f8: C2f::new(&(&m / 8), c7, c7, n(3), true),
            sppf9: Sppf::new(&(&m / 9), c7, c7, 5),
            c2f12: C2f::new(&(&m / 12), c7 + c5, c5, n(3), false),
            c2f15: C2f::new(&(&m / 15), c5 + c3, c3, n(3), false),
            conv16: Conv::new(&(&m / 16), c3, c3, 3, 2),
            c2f18: C2f::new(&(&m / 18), c3 + c5, c5, n(3), false),
            conv19: Conv::new(&(&m / 19), c5, c5, 3, 2),
            c2f21: C2f::new(&(&m / 21), c5 + c7, c7, n(3), false),
            detect: Detect::new(&(&m / DETECT_INDEX), config.num_classes, [c3, c5, c7]),
            channels_last: false,
        }
    }

    /// The three feature maps the head reads (P3, P4, P5: layers 15, 18, 21).
    pub fn neck_features(&self, x: &Tensor, train: bool) -> [Tensor; 3] {
        let up = |t: &Tensor| {
            let (h, w) = (t.size()[2], t.size()[3]);
            t.upsample_nearest2d([2 * h, 2 * w], 2.0, 2.0)
        };
        let x = self.conv1.forward_t(&self.conv0.forward_t(x, train), train);
        let x = self.c2f2.forward_t(&x, train);
        let p3 = self.c2f4.forward_t(&self.conv3.forward_t(&x, train), train);
        let p4 = self
            .c2f6
            .forward_t(&self.conv5.forward_t(&p3, train), train);
        let x = self
            .c2f8
            .forward_t(&self.conv7.forward_t(&p4, train), train);
        let p5 = self.sppf9.forward_t(&x, train);
        let h12 = self.c2f12.forward_t(&Tensor::cat(&[up(&p5), p4], 1), train);
        let out3 = self
            .c2f15
            .forward_t(&Tensor::cat(&[up(&h12), p3], 1), train);
        let down = self.conv16.forward_t(&out3, train);
        let out4 = self.c2f18.forward_t(&Tensor::cat(&[down, h12], 1), train);
        let down = self.conv19.forward_t(&out4, train);
        let out5 = self.c2f21.forward_t(&Tensor::cat(&[down, p5], 1), train);
        [out3, out4, out5]
    }

    /// Raw head outputs per level: `(batch, 64 + classes, h/s, w/s)` for s = 8, 16, 32.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let x = match (train, self.channels_last) {
            (false, true) => memory_format::channels_last(x).unwrap_or_else(|_| x.shallow_clone()),
            _ => x.shallow_clone(),
        };
        let [a, b, c] = self.neck_features(&x, train);
        self.detect.forward_t([&a, &b, &c], train)
    }

    /// Prepares for inference (eval mode only): every Conv's BatchNorm is folded into its
    /// convolution, and with `channels_last` weights and inputs go NHWC (faster oneDNN kernels on
    /// CPU). Training-mode forwards are unaffected; weights loaded afterwards are not seen, so
    /// fuse after loading.
    pub fn fuse(&mut self, channels_last: bool) {
        for conv in [
            &mut self.conv0,
            &mut self.conv1,
            &mut self.conv3,
            &mut self.conv5,
            &mut self.conv7,
            &mut self.conv16,
            &mut self.conv19,
        ] {
            conv.fuse(channels_last);
        }
        for c2f in [
            &mut self.c2f2,
            &mut self.c2f4,
            &mut self.c2f6,
            &mut self.c2f8,
            &mut self.c2f12,
            &mut self.c2f15,
            &mut self.c2f18,
            &mut self.c2f21,
        ] {
            c2f.fuse(channels_last);
        }
        self.sppf9.fuse(channels_last);
        for branch in self.detect.cv2.iter_mut().chain(self.detect.cv3.iter_mut()) {
            branch.fuse(channels_last);
        }
        self.channels_last = channels_last;
    }

    /// Decoded predictions `(batch, 4 + classes, anchors)`: box centre and size in input pixels,
    /// then class probabilities (what Ultralytics' model returns in eval mode).
    pub fn decode(&self, raw: &[Tensor]) -> Tensor {
        let sizes: Vec<(i64, i64)> = raw.iter().map(|t| (t.size()[2], t.size()[3])).collect();
        // (b, no, h, w) → (b, no, h·w) without reading b, so a traced export takes any batch.
        let flat: Vec<Tensor> = raw.iter().map(|t| t.flatten(2, 3)).collect();
        let all = Tensor::cat(&flat, 2);
        let parts = all.split_with_sizes([REG_MAX * 4, self.config.num_classes], 1);
        let (anchors, strides) = make_anchors(&sizes, all.device());
        let dist = expected_distance(&parts[0].transpose(1, 2)).transpose(1, 2);
        let boxes = dist_to_box(&dist, &anchors.transpose(0, 1).unsqueeze(0), true, 1)
            * strides.transpose(0, 1).unsqueeze(0);
        Tensor::cat(&[boxes, parts[1].sigmoid()], 1)
    }

    /// Inference: [`decode`](Self::decode) of the eval-mode forward.
    pub fn predict(&self, x: &Tensor) -> Tensor {
        self.decode(&self.forward_t(x, false))
    }
}

/// Parameters (what PyTorch's `model.parameters()` counts: no BatchNorm buffers) of `vs`.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.variables()
        .iter()
        .filter(|(name, _)| {
            !(name.ends_with(".running_mean")
                || name.ends_with(".running_var")
                || name.ends_with(".num_batches_tracked"))
        })
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_parameter_counts() {
        let expect = [
            ('n', 80, 3_157_200),
            ('n', 1, 3_011_043),
            ('s', 80, 11_166_560),
            ('m', 80, 25_902_640),
            ('l', 80, 43_691_520),
            ('x', 80, 68_229_648),
        ];
        for (name, classes, count) in expect {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let scale = Scale::by_name(&name.to_string()).expect("scale");
            let _ = YoloV8::new(
                &vs.root(),
                YoloConfig {
                    scale,
                    num_classes: classes,
                },
            );
            assert_eq!(
                parameter_count(&vs),
                count,
                "yolov8{name} with {classes} classes"
            );
        }
    }

    #[test]
    fn fused_channels_last_inference_matches() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let scale = Scale::by_name("n").expect("n");
        let mut model = YoloV8::new(
            &vs.root(),
            YoloConfig {
                scale,
                num_classes: 2,
            },
        );
        // Non-trivial BatchNorm statistics, so folding them is exercised.
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.ends_with("running_var") {
                    let _ = t.uniform_(0.5, 1.5);
                } else if name.ends_with("running_mean") {
                    let _ = t.uniform_(-0.2, 0.2);
                }
            }
        });
        let x = Tensor::rand([1, 3, 96, 64], (Kind::Float, tch::Device::Cpu));
        let before = tch::no_grad(|| model.predict(&x));
        model.fuse(true);
        let after = tch::no_grad(|| model.predict(&x));
        let d = (&before - &after).abs().max().double_value(&[]);
        assert!(d < 1e-3, "fused output differs by {d}");
        let probs = (before.narrow(1, 4, 2) - after.narrow(1, 4, 2))
            .abs()
            .max()
            .double_value(&[]);
        assert!(probs < 1e-5, "{probs}");
    }

    #[test]
    fn output_shapes_and_names() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let scale = Scale::by_name("yolov8n").expect("n");
        let model = YoloV8::new(
            &vs.root(),
            YoloConfig {
                scale,
                num_classes: 3,
            },
        );
        let raw = tch::no_grad(|| {
            model.forward_t(
                &Tensor::zeros([2, 3, 64, 96], (Kind::Float, tch::Device::Cpu)),
                false,
            )
        });
        let shapes: Vec<Vec<i64>> = raw.iter().map(|t| t.size()).collect();
        assert_eq!(
            shapes,
            vec![vec![2, 67, 8, 12], vec![2, 67, 4, 6], vec![2, 67, 2, 3]]
        );
        let decoded = model.decode(&raw);
        assert_eq!(decoded.size(), vec![2, 7, 96 + 24 + 6]);
        let vars = vs.variables();
        for name in [
            "model.0.conv.weight",
            "model.2.m.0.cv1.bn.running_var",
            "model.9.cv2.conv.weight",
            "model.22.cv2.0.0.conv.weight",
            "model.22.cv3.2.2.bias",
            "model.22.dfl.conv.weight",
        ] {
            assert!(vars.contains_key(name), "{name}");
        }
        // Ultralytics' yolov8n state dict holds 355 tensors (num_batches_tracked included).
        assert_eq!(vars.len(), 355);
    }
}
