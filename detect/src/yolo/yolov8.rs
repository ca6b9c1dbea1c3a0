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

use tch::nn::Path;
use tch::Tensor;

use crate::yolo::blocks::{upsample2, C2f, Conv, Sppf};
use crate::yolo::head::{ClassBranch, Detect};
use crate::yolo::model::{input_layout, YoloConfig};

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
            detect: Detect::new(
                &(&m / 22),
                config.num_classes,
                [c3, c5, c7],
                ClassBranch::Conv3x3,
            ),
            channels_last: false,
        }
    }

    /// The three feature maps the head reads (P3, P4, P5: layers 15, 18, 21).
    pub fn neck_features(&self, x: &Tensor, train: bool) -> [Tensor; 3] {
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
        let h12 = self
            .c2f12
            .forward_t(&Tensor::cat(&[upsample2(&p5), p4], 1), train);
        let out3 = self
            .c2f15
            .forward_t(&Tensor::cat(&[upsample2(&h12), p3], 1), train);
        let down = self.conv16.forward_t(&out3, train);
        let out4 = self.c2f18.forward_t(&Tensor::cat(&[down, h12], 1), train);
        let down = self.conv19.forward_t(&out4, train);
        let out5 = self.c2f21.forward_t(&Tensor::cat(&[down, p5], 1), train);
        [out3, out4, out5]
    }

    /// Raw head outputs per level: `(batch, 64 + classes, h/s, w/s)` for s = 8, 16, 32.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let x = input_layout(x, !train && self.channels_last);
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
        self.detect.fuse(channels_last);
        self.channels_last = channels_last;
    }
}
