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

use crate::yolo::blocks::{c3k2, upsample2, C2f, Conv, Sppf};
use crate::yolo::head::{ClassBranch, Detect};
use crate::yolo::model::{input_layout, YoloConfig};
use crate::yolo::psa::C2Psa;

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

/// What a table of YOLO11's topology says beyond it: YOLO11's own, or YOLO26's (which keeps
/// every layer and index and changes these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The neck's C3k2 at layers 13, 16 and 19 run C3k blocks.
    pub c3k_neck: bool,
    /// Layer 22's C3k2 runs a Bottleneck and a PSA block, once whatever the scale's depth.
    pub attn_last: bool,
    /// SPPF without `cv1`'s activation, with a residual (`SPPF(c, c, 5, 3, True)`).
    pub sppf_shortcut: bool,
    /// The end-to-end head: direct box regression (no DFL) and a one-to-one branch.
    pub end2end: bool,
}

impl Table {
    /// `yolo11.yaml`.
    pub const YOLO11: Table = Table {
        c3k_neck: false,
        attn_last: false,
        sppf_shortcut: false,
        end2end: false,
    };
}

impl Yolo11 {
    /// Builds the model under `p` (pass the VarStore root: variables go to `p/model/<i>`).
    pub fn new(p: &Path, config: YoloConfig) -> Self {
        Self::with_table(p, config, Table::YOLO11)
    }

    /// Builds a model of YOLO11's topology as `table` says (see [`crate::yolo::yolo26`]).
    pub fn with_table(p: &Path, config: YoloConfig, table: Table) -> Self {
        let s = config.scale;
        let m = p / "model";
        let ch = |c| s.channels(c);
        let n = s.repeats(2);
        // Ultralytics turns C3k on in every C3k2 of the larger scales.
        let c3k = |table: bool| table || matches!(s.name, 'm' | 'l' | 'x');
        let (c0, c1, c2, c3, c5, c7) = (ch(64), ch(128), ch(256), ch(256), ch(512), ch(1024));
        let neck = c3k(table.c3k_neck);
        let sppf = if table.sppf_shortcut {
            Sppf::yolo26(&(&m / 9), c7, c7, 5, 3, true)
        } else {
            Sppf::new(&(&m / 9), c7, c7, 5)
        };
        let last_n = if table.attn_last { 1 } else { n };
        let detect = if table.end2end {
            Detect::end2end(&(&m / 23), config.num_classes, [c3, c5, c7])
        } else {
            Detect::new(
                &(&m / 23),
                config.num_classes,
                [c3, c5, c7],
                ClassBranch::DepthwiseSeparable,
            )
        };
        Yolo11 {
            config,
            conv0: Conv::new(&(&m / 0), 3, c0, 3, 2),
            conv1: Conv::new(&(&m / 1), c0, c1, 3, 2),
            c3k2_2: c3k2(&(&m / 2), c1, c2, n, c3k(false), 0.25, false),
            conv3: Conv::new(&(&m / 3), c2, c3, 3, 2),
            c3k2_4: c3k2(&(&m / 4), c3, c5, n, c3k(false), 0.25, false),
            conv5: Conv::new(&(&m / 5), c5, c5, 3, 2),
            c3k2_6: c3k2(&(&m / 6), c5, c5, n, c3k(true), 0.5, false),
            conv7: Conv::new(&(&m / 7), c5, c7, 3, 2),
            c3k2_8: c3k2(&(&m / 8), c7, c7, n, c3k(true), 0.5, false),
            sppf9: sppf,
            c2psa10: C2Psa::new(&(&m / 10), c7, n),
            c3k2_13: c3k2(&(&m / 13), c7 + c5, c5, n, neck, 0.5, false),
            c3k2_16: c3k2(&(&m / 16), c5 + c5, c3, n, neck, 0.5, false),
            conv17: Conv::new(&(&m / 17), c3, c3, 3, 2),
            c3k2_19: c3k2(&(&m / 19), c3 + c5, c5, n, neck, 0.5, false),
            conv20: Conv::new(&(&m / 20), c5, c5, 3, 2),
            c3k2_22: c3k2(
                &(&m / 22),
                c5 + c7,
                c7,
                last_n,
                c3k(true),
                0.5,
                table.attn_last,
            ),
            detect,
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

    /// Raw outputs of both heads of an end-to-end model: one-to-many, and one-to-one (`None`
    /// without that branch), the latter on detached features in training.
    pub fn forward_both(&self, x: &Tensor, train: bool) -> (Vec<Tensor>, Option<Vec<Tensor>>) {
        let x = input_layout(x, !train && self.channels_last);
        let [a, b, c] = self.neck_features(&x, train);
        let one2many = self.detect.forward_t([&a, &b, &c], train);
        let one2one = self.detect.forward_one2one_t([&a, &b, &c], train);
        (one2many, one2one)
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
