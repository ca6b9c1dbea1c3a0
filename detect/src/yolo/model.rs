//! The YOLO detection models by version: which versions and scales exist, and [`Yolo`], the one
//! model type the workflows (train, val, predict, export) take, whichever version it is.

use std::fmt;

use tch::nn::{self, Path};
use tch::Tensor;

use crate::yolo::head::Detect;
use crate::yolo::yolo11::Yolo11;
use crate::yolo::yolo26;
use crate::yolo::yolov8::YoloV8;

/// A YOLO generation with its own layer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// YOLOv8 (2023): C2f blocks, Detect at `model.22`.
    V8,
    /// YOLO11 (2024): C3k2 and C2PSA blocks, depthwise class branch, Detect at `model.23`.
    V11,
    /// YOLO26 (2025): YOLO11's table with an end-to-end head (no DFL, a one-to-one branch).
    V26,
}

impl Version {
    /// Both versions, oldest first.
    pub const ALL: [Version; 3] = [Version::V8, Version::V11, Version::V26];

    /// Ultralytics' model-name prefix: `yolov8`, `yolo11`.
    pub fn prefix(self) -> &'static str {
        match self {
            Version::V8 => "yolov8",
            Version::V11 => "yolo11",
            Version::V26 => "yolo26",
        }
    }

    /// The index of the Detect layer in `model.*`.
    pub fn detect_index(self) -> usize {
        match self {
            Version::V8 => 22,
            Version::V11 | Version::V26 => 23,
        }
    }

    /// The five published scales, `[depth, width, max_channels]` of the version's yaml.
    pub fn scales(self) -> [Scale; 5] {
        match self {
            Version::V8 => [
                Scale::new('n', 0.33, 0.25, 1024),
                Scale::new('s', 0.33, 0.50, 1024),
                Scale::new('m', 0.67, 0.75, 768),
                Scale::new('l', 1.00, 1.00, 512),
                Scale::new('x', 1.00, 1.25, 512),
            ],
            Version::V11 | Version::V26 => [
                Scale::new('n', 0.50, 0.25, 1024),
                Scale::new('s', 0.50, 0.50, 1024),
                Scale::new('m', 0.50, 1.00, 512),
                Scale::new('l', 1.00, 1.00, 512),
                Scale::new('x', 1.00, 1.50, 512),
            ],
        }
    }

    /// The scale of this version with letter `c`.
    pub fn scale(self, c: char) -> Option<Scale> {
        self.scales().into_iter().find(|s| s.name == c)
    }

    /// The version of an architecture name: `yolov8` or `yolo11`.
    pub fn of_arch(arch: &str) -> Option<Version> {
        Self::ALL.into_iter().find(|v| v.prefix() == arch)
    }

    /// A model name (`yolov8n`, `yolo11x`, with or without `.pt`/`.yaml`) as version and scale.
    pub fn parse_model_name(name: &str) -> Option<(Version, Scale)> {
        let stem = name
            .strip_suffix(".pt")
            .or_else(|| name.strip_suffix(".yaml"))
            .unwrap_or(name);
        Self::ALL.into_iter().find_map(|v| {
            let letter = stem.strip_prefix(v.prefix())?;
            let mut chars = letter.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => v.scale(c).map(|s| (v, s)),
                _ => None,
            }
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V8 => "YOLOv8",
            Version::V11 => "YOLO11",
            Version::V26 => "YOLO26",
        })
    }
}

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
    const fn new(name: char, depth: f64, width: f64, max_channels: i64) -> Self {
        Scale {
            name,
            depth,
            width,
            max_channels,
        }
    }

    /// Channels of a layer nominally `c` wide: `⌈min(c, max)·width / 8⌉·8`.
    pub fn channels(&self, c: i64) -> i64 {
        let scaled = (c.min(self.max_channels) as f64 * self.width).ceil() as i64;
        (scaled + 7) / 8 * 8
    }

    /// Repeats of a block nominally repeated `n` times: `max(round(n·depth), 1)`.
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
    /// The generation.
    pub version: Version,
    /// Model size.
    pub scale: Scale,
    /// Number of classes.
    pub num_classes: i64,
}

impl YoloConfig {
    /// The Ultralytics name of what is built: `yolov8n`, `yolo11s`, ….
    pub fn name(&self) -> String {
        format!("{}{}", self.version.prefix(), self.scale.name)
    }
}

/// A YOLO detection model of either version, variables under `model.<i>`.
// Built once per model and never moved in a loop: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Yolo {
    /// YOLOv8.
    V8(YoloV8),
    /// YOLO11.
    V11(Yolo11),
    /// YOLO26: YOLO11's topology with [`yolo26::TABLE`].
    V26(Yolo11),
}

impl Yolo {
    /// Builds `config` under `p` (pass the VarStore root: variables go to `p/model/<i>`).
    pub fn new(p: &Path, config: YoloConfig) -> Self {
        match config.version {
            Version::V8 => Yolo::V8(YoloV8::new(p, config)),
            Version::V11 => Yolo::V11(Yolo11::new(p, config)),
            Version::V26 => Yolo::V26(Yolo11::with_table(p, config, yolo26::TABLE)),
        }
    }

    /// What was built.
    pub fn config(&self) -> YoloConfig {
        match self {
            Yolo::V8(m) => m.config,
            Yolo::V11(m) | Yolo::V26(m) => m.config,
        }
    }

    /// The Detect head.
    pub fn detect(&self) -> &Detect {
        match self {
            Yolo::V8(m) => &m.detect,
            Yolo::V11(m) | Yolo::V26(m) => &m.detect,
        }
    }

    /// Raw head outputs per level: `(batch, 64 + classes, h/s, w/s)` for s = 8, 16, 32.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        match self {
            Yolo::V8(m) => m.forward_t(x, train),
            Yolo::V11(m) | Yolo::V26(m) => m.forward_t(x, train),
        }
    }

    /// Raw outputs of both heads: one-to-many, and one-to-one for an end-to-end model (YOLO26;
    /// `None` otherwise).
    pub fn forward_both(&self, x: &Tensor, train: bool) -> (Vec<Tensor>, Option<Vec<Tensor>>) {
        match self {
            Yolo::V8(m) => (m.forward_t(x, train), None),
            Yolo::V11(m) | Yolo::V26(m) => m.forward_both(x, train),
        }
    }

    /// NMS-free detections of an end-to-end model, `(batch, k, 6)` (see
    /// [`Detect::decode_end2end`]); `None` for a model without a one-to-one head.
    pub fn predict_end2end(&self, x: &Tensor, max_det: i64) -> Option<Tensor> {
        let (_, one2one) = self.forward_both(x, false);
        Some(self.detect().decode_end2end(&one2one?, max_det))
    }

    /// Decoded predictions `(batch, 4 + classes, anchors)` (see [`Detect::decode`]).
    pub fn decode(&self, raw: &[Tensor]) -> Tensor {
        self.detect().decode(raw)
    }

    /// Inference: [`decode`](Self::decode) of the eval-mode forward.
    pub fn predict(&self, x: &Tensor) -> Tensor {
        self.decode(&self.forward_t(x, false))
    }

    /// Prepares for inference (eval mode only): every Conv's BatchNorm is folded into its
    /// convolution, and with `channels_last` weights and inputs go NHWC (faster oneDNN kernels on
    /// CPU). Training-mode forwards are unaffected; weights loaded afterwards are not seen, so
    /// fuse after loading.
    pub fn fuse(&mut self, channels_last: bool) {
        match self {
            Yolo::V8(m) => m.fuse(channels_last),
            Yolo::V11(m) | Yolo::V26(m) => m.fuse(channels_last),
        }
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

/// `x` channels-last when `enabled` (the fused inference path), else `x` itself.
pub(crate) fn input_layout(x: &Tensor, enabled: bool) -> Tensor {
    if enabled {
        ferrovis_core::memory_format::channels_last(x).unwrap_or_else(|_| x.shallow_clone())
    } else {
        x.shallow_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_parse() {
        let (v, s) = Version::parse_model_name("yolo11m.pt").expect("yolo11m");
        assert_eq!(
            (v, s.name, s.width, s.max_channels),
            (Version::V11, 'm', 1.0, 512)
        );
        let (v, s) = Version::parse_model_name("yolov8x.yaml").expect("yolov8x");
        assert_eq!((v, s.name, s.width), (Version::V8, 'x', 1.25));
        assert!(Version::parse_model_name("yolo11q").is_none());
        assert!(Version::parse_model_name("yolo11nn").is_none());
        assert!(Version::parse_model_name("yolov5n").is_none());
    }

    /// The parameter counts of the yaml comments, recounted with Ultralytics in the test suite.
    #[test]
    fn published_parameter_counts() {
        let expect = [
            (Version::V8, 'n', 80, 3_157_200),
            (Version::V8, 'n', 1, 3_011_043),
            (Version::V8, 's', 80, 11_166_560),
            (Version::V8, 'm', 80, 25_902_640),
            (Version::V8, 'l', 80, 43_691_520),
            (Version::V8, 'x', 80, 68_229_648),
            (Version::V11, 'n', 80, 2_624_080),
            (Version::V11, 's', 80, 9_458_752),
            (Version::V11, 'm', 80, 20_114_688),
            (Version::V11, 'l', 80, 25_372_160),
            (Version::V11, 'x', 80, 56_966_176),
            (Version::V26, 'n', 80, 2_572_280),
            (Version::V26, 's', 80, 10_009_784),
            (Version::V26, 'm', 80, 21_896_248),
            (Version::V26, 'l', 80, 26_299_704),
            (Version::V26, 'x', 80, 58_993_368),
        ];
        for (version, name, classes, count) in expect {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let scale = version.scale(name).expect("scale");
            let _ = Yolo::new(
                &vs.root(),
                YoloConfig {
                    version,
                    scale,
                    num_classes: classes,
                },
            );
            assert_eq!(
                parameter_count(&vs),
                count,
                "{}{name} with {classes} classes",
                version.prefix()
            );
        }
    }

    #[test]
    fn fused_channels_last_inference_matches() {
        for version in Version::ALL {
            tch::manual_seed(3);
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let scale = version.scale('n').expect("n");
            let mut model = Yolo::new(
                &vs.root(),
                YoloConfig {
                    version,
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
            let x = Tensor::rand([1, 3, 96, 64], (tch::Kind::Float, tch::Device::Cpu));
            let before = tch::no_grad(|| model.predict(&x));
            model.fuse(true);
            let after = tch::no_grad(|| model.predict(&x));
            let d = (&before - &after).abs().max().double_value(&[]);
            assert!(d < 1e-3, "{version}: fused output differs by {d}");
            let probs = (before.narrow(1, 4, 2) - after.narrow(1, 4, 2))
                .abs()
                .max()
                .double_value(&[]);
            assert!(probs < 1e-5, "{version}: {probs}");
        }
    }

    #[test]
    fn output_shapes_and_names() {
        for (version, keys, last) in [
            (Version::V8, 355, "model.22.cv3.2.2.bias"),
            (Version::V11, 499, "model.23.cv3.2.1.1.bn.bias"),
        ] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let scale = version.scale('n').expect("n");
            let model = Yolo::new(
                &vs.root(),
                YoloConfig {
                    version,
                    scale,
                    num_classes: 3,
                },
            );
            let raw = tch::no_grad(|| {
                model.forward_t(
                    &Tensor::zeros([2, 3, 64, 96], (tch::Kind::Float, tch::Device::Cpu)),
                    false,
                )
            });
            let shapes: Vec<Vec<i64>> = raw.iter().map(|t| t.size()).collect();
            let no = 4 * model.detect().reg_max + 3;
            assert_eq!(
                shapes,
                vec![vec![2, no, 8, 12], vec![2, no, 4, 6], vec![2, no, 2, 3]]
            );
            let decoded = model.decode(&raw);
            assert_eq!(decoded.size(), vec![2, 7, 96 + 24 + 6]);
            let vars = vs.variables();
            let d = version.detect_index();
            for name in [
                "model.0.conv.weight".to_string(),
                "model.2.m.0.cv1.bn.running_var".into(),
                "model.9.cv2.conv.weight".into(),
                format!("model.{d}.cv2.0.0.conv.weight"),
                last.into(),
            ] {
                assert!(vars.contains_key(&name), "{name}");
            }
            // DFL's fixed projection is a variable where there is a DFL.
            let dfl = format!("model.{d}.dfl.conv.weight");
            assert_eq!(vars.contains_key(&dfl), version != Version::V26, "{dfl}");
            // Ultralytics' state dicts hold 355 (yolov8n), 499 (yolo11n) and 708 (yolo26n)
            // tensors, num_batches_tracked included.
            assert_eq!(vars.len(), keys, "{version}");
        }
    }
}
