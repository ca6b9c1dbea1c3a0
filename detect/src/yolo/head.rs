//! The anchor-free decoupled Detect head YOLOv8 and YOLO11 share, and its decoding: per level a
//! box branch (`cv2.i`, each side's distance as logits over 16 bins, DFL) and a class branch
//! (`cv3.i`, one logit per class), at strides 8, 16 and 32.
//!
//! The two families differ only in the class branch's first two stages: YOLOv8 uses two 3×3
//! Convs (`cv3.i.0`, `cv3.i.1`); YOLO11 makes each a depthwise 3×3 followed by a pointwise 1×1
//! (`cv3.i.0.0`, `cv3.i.0.1`, `cv3.i.1.0`, `cv3.i.1.1`), which Ultralytics calls the non-legacy
//! head.

use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use crate::yolo::blocks::Conv;

/// Bins of the distance distribution of each box side.
pub const REG_MAX: i64 = 16;
/// Strides of the three detection levels (P3, P4, P5).
pub const STRIDES: [i64; 3] = [8, 16, 32];

/// How a class branch's two hidden stages are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassBranch {
    /// Two 3×3 Convs (YOLOv8).
    Conv3x3,
    /// Two depthwise-separable stages, DWConv 3×3 then Conv 1×1 (YOLO11).
    DepthwiseSeparable,
}

/// One hidden stage of a head branch.
// Built once per model and never moved in a loop: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Stage {
    /// A 3×3 Conv (`<p>.conv`, `<p>.bn`).
    Conv(Conv),
    /// DWConv 3×3 (`<p>.0`) then Conv 1×1 (`<p>.1`).
    Separable(Conv, Conv),
}

impl Stage {
    fn new(p: &Path, kind: ClassBranch, c_in: i64, c_out: i64) -> Self {
        match kind {
            ClassBranch::Conv3x3 => Stage::Conv(Conv::new(p, c_in, c_out, 3, 1)),
            ClassBranch::DepthwiseSeparable => Stage::Separable(
                Conv::depthwise(&(p / 0), c_in, c_in, 3),
                Conv::new(&(p / 1), c_in, c_out, 1, 1),
            ),
        }
    }

    fn fuse(&mut self, cl: bool) {
        match self {
            Stage::Conv(c) => c.fuse(cl),
            Stage::Separable(a, b) => {
                a.fuse(cl);
                b.fuse(cl);
            }
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Stage::Conv(c) => c.forward_t(x, train),
            Stage::Separable(a, b) => b.forward_t(&a.forward_t(x, train), train),
        }
    }
}

/// One branch of the head at one level: two hidden stages, then a plain 1×1 convolution with
/// bias (`<p>.0`, `<p>.1`, `<p>.2`).
#[derive(Debug)]
pub struct HeadBranch {
    stages: [Stage; 2],
    out: nn::Conv2D,
}

impl HeadBranch {
    fn new(p: &Path, kind: ClassBranch, c_in: i64, hidden: i64, c_out: i64) -> Self {
        HeadBranch {
            stages: [
                Stage::new(&(p / 0), kind, c_in, hidden),
                Stage::new(&(p / 1), kind, hidden, hidden),
            ],
            out: nn::conv2d(p / "2", hidden, c_out, 1, Default::default()),
        }
    }

    fn fuse(&mut self, cl: bool) {
        for s in &mut self.stages {
            s.fuse(cl);
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.stages[0].forward_t(x, train);
        self.out.forward(&self.stages[1].forward_t(&h, train))
    }
}

/// The decoupled head: per level a box branch (`cv2.i`: 4·16 distance logits, or with YOLO26's
/// `reg_max` 1 the four distances themselves) and a class branch (`cv3.i`, one logit per class).
/// YOLOv8's and YOLO11's fixed DFL projection `dfl.conv.weight` (0…15) exists as a variable so
/// checkpoints keep Ultralytics' layout; [`expected_distance`] computes its product. YOLO26's
/// end-to-end head has a second pair of branches (`one2one_cv2.i`, `one2one_cv3.i`) trained with
/// one positive per object, whose outputs need no NMS ([`Detect::decode_end2end`]).
#[derive(Debug)]
pub struct Detect {
    cv2: Vec<HeadBranch>,
    cv3: Vec<HeadBranch>,
    one2one: Option<(Vec<HeadBranch>, Vec<HeadBranch>)>,
    /// Classes predicted.
    pub num_classes: i64,
    /// Bins per box side (16 with DFL; 1: the distance itself).
    pub reg_max: i64,
}

impl Detect {
    /// YOLOv8's and YOLO11's head over levels of `channels` input channels whose class branches
    /// are `kind`.
    pub fn new(p: &Path, num_classes: i64, channels: [i64; 3], kind: ClassBranch) -> Self {
        let (cv2, cv3) = branches(p, "cv2", "cv3", num_classes, channels, kind, REG_MAX, 2.0);
        // A parameter in Ultralytics' state dict that never trains.
        let proj = Tensor::arange(REG_MAX, (Kind::Float, p.device())).view([1, REG_MAX, 1, 1]);
        let _ = (p / "dfl" / "conv")
            .var_copy("weight", &proj)
            .requires_grad_(false);
        Detect {
            cv2,
            cv3,
            one2one: None,
            num_classes,
            reg_max: REG_MAX,
        }
    }

    /// YOLO26's end-to-end head: direct distances (`reg_max` 1, no DFL), depthwise class
    /// branches, and the one-to-one pair beside the one-to-many one.
    pub fn end2end(p: &Path, num_classes: i64, channels: [i64; 3]) -> Self {
        let kind = ClassBranch::DepthwiseSeparable;
        let (cv2, cv3) = branches(p, "cv2", "cv3", num_classes, channels, kind, 1, 2.0);
        let one2one = branches(
            p,
            "one2one_cv2",
            "one2one_cv3",
            num_classes,
            channels,
            kind,
            1,
            2.0,
        );
        Detect {
            cv2,
            cv3,
            one2one: Some(one2one),
            num_classes,
            reg_max: 1,
        }
    }

    /// Whether the head has a one-to-one branch (YOLO26).
    pub fn is_end2end(&self) -> bool {
        self.one2one.is_some()
    }

    /// Folds every BatchNorm of every branch (see [`Conv::fuse`]).
    pub fn fuse(&mut self, cl: bool) {
        let extra = self
            .one2one
            .iter_mut()
            .flat_map(|(a, b)| a.iter_mut().chain(b.iter_mut()));
        for branch in self.cv2.iter_mut().chain(self.cv3.iter_mut()).chain(extra) {
            branch.fuse(cl);
        }
    }

    /// Raw one-to-many outputs per level, each `(batch, 4·reg_max + classes, h, w)`: box
    /// distance logits (or distances), then class logits.
    pub fn forward_t(&self, feats: [&Tensor; 3], train: bool) -> Vec<Tensor> {
        run_branches(&self.cv2, &self.cv3, feats, train)
    }

    /// Raw one-to-one outputs (YOLO26), laid out as [`forward_t`](Self::forward_t)'s. In
    /// training they are computed on detached features: the one-to-one loss trains the branch,
    /// never the network under it (as Ultralytics does).
    pub fn forward_one2one_t(&self, feats: [&Tensor; 3], train: bool) -> Option<Vec<Tensor>> {
        let (cv2, cv3) = self.one2one.as_ref()?;
        Some(if train {
            let detached = feats.map(Tensor::detach);
            run_branches(cv2, cv3, [&detached[0], &detached[1], &detached[2]], train)
        } else {
            run_branches(cv2, cv3, feats, train)
        })
    }

    /// Boxes `(batch, 4, anchors)` in input pixels (corners, or centre and size with `xywh`) and
    /// class probabilities `(batch, classes, anchors)` of raw outputs.
    fn boxes_and_probabilities(&self, raw: &[Tensor], xywh: bool) -> (Tensor, Tensor) {
        // (b, no, h, w) → (b, no, h·w) without reading b, so a traced export takes any batch.
        let flat: Vec<Tensor> = raw.iter().map(|t| t.flatten(2, 3)).collect();
        let all = Tensor::cat(&flat, 2);
        let parts = all.split_with_sizes([self.reg_max * 4, self.num_classes], 1);
        let (anchors, strides) = anchors_of(raw);
        let dist = if self.reg_max > 1 {
            expected_distance(&parts[0].transpose(1, 2)).transpose(1, 2)
        } else {
            parts[0].shallow_clone()
        };
        let boxes = dist_to_box(&dist, &anchors.transpose(0, 1).unsqueeze(0), xywh, 1)
            * strides.transpose(0, 1).unsqueeze(0);
        (boxes, parts[1].sigmoid())
    }

    /// Decoded predictions `(batch, 4 + classes, anchors)` from raw outputs: box centre and size
    /// in input pixels, then class probabilities (what Ultralytics' model returns in eval mode,
    /// the input of NMS).
    pub fn decode(&self, raw: &[Tensor]) -> Tensor {
        let (boxes, probs) = self.boxes_and_probabilities(raw, true);
        Tensor::cat(&[boxes, probs], 1)
    }

    /// YOLO26's NMS-free detections from raw one-to-one outputs: `(batch, k, 6)` rows `x1, y1,
    /// x2, y2, score, class` in input pixels, by decreasing score, `k = min(max_det, anchors)`.
    /// The `k` anchors with the best class scores are candidates, and of their (anchor, class)
    /// pairs the `k` best are kept, so an anchor may appear once per class (Ultralytics'
    /// `Detect.postprocess`).
    pub fn decode_end2end(&self, raw: &[Tensor], max_det: i64) -> Tensor {
        let (boxes, probs) = self.boxes_and_probabilities(raw, false);
        let (boxes, probs) = (boxes.transpose(1, 2), probs.transpose(1, 2)); // (b, a, 4|c)
        let (a, nc) = (probs.size()[1], self.num_classes);
        let k = max_det.min(a);
        let (best, _) = probs.max_dim(-1, false);
        let (_, candidates) = best.topk(k, 1, true, true); // (b, k)
        let candidate_probs = probs.gather(
            1,
            &candidates.unsqueeze(-1).expand([-1, -1, nc], false),
            false,
        );
        let (scores, index) = candidate_probs.flatten(1, 2).topk(k, 1, true, true);
        let classes = index.remainder(nc);
        let anchors = candidates.gather(1, &index.floor_divide_scalar(nc), false);
        let chosen = boxes.gather(1, &anchors.unsqueeze(-1).expand([-1, -1, 4], false), false);
        Tensor::cat(
            &[
                chosen,
                scores.unsqueeze(-1),
                classes.to_kind(scores.kind()).unsqueeze(-1),
            ],
            -1,
        )
    }
}

/// The box and class branches of one head (`<box>.i`, `<cls>.i`), with Ultralytics' bias prior:
/// box outputs `box_bias`; class logits so that about 5 objects per 640² image are expected at
/// each level before training.
#[allow(clippy::too_many_arguments)]
fn branches(
    p: &Path,
    box_name: &str,
    cls_name: &str,
    num_classes: i64,
    channels: [i64; 3],
    kind: ClassBranch,
    reg_max: i64,
    box_bias: f64,
) -> (Vec<HeadBranch>, Vec<HeadBranch>) {
    let c2 = (channels[0] / 4).max(16).max(4 * reg_max);
    let c3 = channels[0].max(num_classes.min(100));
    let cv2: Vec<HeadBranch> = channels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            HeadBranch::new(
                &(p / box_name / i),
                ClassBranch::Conv3x3,
                c,
                c2,
                4 * reg_max,
            )
        })
        .collect();
    let cv3: Vec<HeadBranch> = channels
        .iter()
        .enumerate()
        .map(|(i, &c)| HeadBranch::new(&(p / cls_name / i), kind, c, c3, num_classes))
        .collect();
    tch::no_grad(|| {
        for ((a, b), s) in cv2.iter().zip(&cv3).zip(STRIDES) {
            if let Some(bias) = &a.out.bs {
                let _ = bias.shallow_clone().fill_(box_bias);
            }
            if let Some(bias) = &b.out.bs {
                let prior = (5.0 / num_classes as f64 / (640.0 / s as f64).powi(2)).ln();
                let _ = bias.shallow_clone().fill_(prior);
            }
        }
    });
    (cv2, cv3)
}

/// Per level, the box branch's and the class branch's outputs concatenated along channels.
fn run_branches(
    cv2: &[HeadBranch],
    cv3: &[HeadBranch],
    feats: [&Tensor; 3],
    train: bool,
) -> Vec<Tensor> {
    feats
        .iter()
        .zip(cv2.iter().zip(cv3))
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

/// [`make_anchors`] for the levels `raw` holds, `(batch, channels, h, w)` each, computed from the
/// maps themselves (a plane of ones summed along each axis) rather than from sizes read out of
/// them: a traced export then recomputes the anchors for any input size.
pub fn anchors_of(raw: &[Tensor]) -> (Tensor, Tensor) {
    let mut points = Vec::new();
    let mut strides = Vec::new();
    for (t, s) in raw.iter().zip(STRIDES) {
        let ones = t.select(0, 0).select(0, 0).ones_like(); // (h, w)
        let sx = ones.cumsum(1, ones.kind()) - 0.5;
        let sy = ones.cumsum(0, ones.kind()) - 0.5;
        points.push(Tensor::stack(&[sx, sy], -1).view([-1, 2]));
        strides.push(ones.view([-1, 1]) * s as f64);
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
