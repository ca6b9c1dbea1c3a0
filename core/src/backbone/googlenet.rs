//! GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", 2014; Inception v1) as torchvision
//! builds it. It differs from the paper in ways torchvision's weights (ported from Caffe) depend
//! on: every convolution is followed by BatchNorm (eps 0.001) before its ReLU, there is no local
//! response normalisation, max-pools round up (`ceil_mode`), and the branch the paper gives a
//! 5×5 convolution has a 3×3 one (torchvision issue 906, kept for the weights). The two auxiliary
//! classifiers (`aux1` after `inception4a`, `aux2` after `inception4d`) pool to 4×4, and run only
//! in training ([`Backbone::forward_aux_t`]).
//!
//! Names are torchvision's: `conv1` … `conv3`, `inception3a` … `inception5b` (each with
//! `branch1`, `branch2.{0,1}`, `branch3.{0,1}`, `branch4.1`, every one a `conv` + `bn` pair),
//! `aux1`/`aux2` (`conv`, `fc1`, `fc2`) and `fc`.
//!
//! The shared Inception pieces (the conv-BatchNorm-ReLU unit, the truncated-normal
//! initialisation, `transform_input`) live here and Inception v3 reuses them.

use tch::nn::{self, Init, Module, Path};
use tch::Tensor;

use super::{
    global_pool, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage, IMAGENET_MEAN,
    IMAGENET_STD,
};
use crate::nn::BatchNorm2d;

/// Draws `w` as torchvision's Inception models do, `trunc_normal_(std, a=-2, b=2)`: the bounds
/// are absolute and at least 20 standard deviations away for every layer here, so a normal draw
/// clamped to them is the same distribution (the clamp only guards the bound).
fn truncate(w: &Tensor) {
    tch::no_grad(|| {
        let _ = w.shallow_clone().clamp_(-2.0, 2.0);
    });
}

/// A linear layer with a truncated-normal weight of standard deviation `std` and PyTorch's
/// default bias (uniform ±1/√fan_in, which torchvision leaves).
pub(super) fn trunc_normal_linear(p: &Path, c_in: i64, c_out: i64, std: f64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: std,
        },
        bs_init: None,
        bias: true,
    };
    let fc = nn::linear(p, c_in, c_out, cfg);
    truncate(&fc.ws);
    fc
}

/// torchvision's `BasicConv2d`: a bias-free convolution, BatchNorm with eps 0.001, ReLU.
#[derive(Debug)]
pub(super) struct BasicConv2d {
    conv: nn::Conv2D,
    bn: BatchNorm2d,
}

impl BasicConv2d {
    /// A `kernel` (height, width) convolution with `stride` and zero `padding` (height, width),
    /// its weight truncated-normal with standard deviation `std`.
    pub(super) fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        kernel: [i64; 2],
        stride: i64,
        padding: [i64; 2],
        std: f64,
    ) -> Self {
        let cfg = nn::ConvConfigND::<[i64; 2]> {
            stride: [stride, stride],
            padding,
            bias: false,
            ws_init: Init::Randn {
                mean: 0.0,
                stdev: std,
            },
            ..Default::default()
        };
        let conv = nn::conv(p / "conv", c_in, c_out, kernel, cfg);
        truncate(&conv.ws);
        BasicConv2d {
            conv,
            bn: BatchNorm2d::with(&(p / "bn"), c_out, 0.001, 0.1),
        }
    }

    /// A square `k`×`k` convolution.
    pub(super) fn square(
        p: &Path,
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        padding: i64,
        std: f64,
    ) -> Self {
        Self::new(p, c_in, c_out, [k, k], stride, [padding, padding], std)
    }

    pub(super) fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // ReLU in place on the fresh BatchNorm output, as torchvision's `inplace=True`.
        let mut y = self.bn.forward_t(&self.conv.forward(x), train);
        let _ = y.relu_();
        y
    }
}

/// torchvision's `transform_input`: re-normalises an ImageNet-normalised input to
/// `(x − 0.5) / 0.5` per channel, what the ported Caffe/TensorFlow weights were trained on.
pub(super) fn transform_input(x: &Tensor) -> Tensor {
    let opts = (x.kind(), x.device());
    let scale: Vec<f64> = IMAGENET_STD.iter().map(|s| s / 0.5).collect();
    let shift: Vec<f64> = IMAGENET_MEAN.iter().map(|m| (m - 0.5) / 0.5).collect();
    let scale = Tensor::from_slice(&scale).to_kind(opts.0).to_device(opts.1);
    let shift = Tensor::from_slice(&shift).to_kind(opts.0).to_device(opts.1);
    x * scale.view([1, 3, 1, 1]) + shift.view([1, 3, 1, 1])
}

/// The preprocessing of weights ported with `transform_input`: torchvision normalises with the
/// ImageNet statistics and the model maps them to `(x − 0.5) / 0.5`; a model built without
/// `transform_input` gets the same input from mean 0.5 and standard deviation 0.5 directly.
pub(super) fn ported_cfg(transform_input: bool, crop: i64, resize: i64) -> PretrainedCfg {
    let (mean, std) = if transform_input {
        (IMAGENET_MEAN, IMAGENET_STD)
    } else {
        ([0.5; 3], [0.5; 3])
    };
    PretrainedCfg {
        input_size: crop,
        resize_size: resize,
        mean,
        std,
        ..PretrainedCfg::imagenet()
    }
}

/// GoogLeNet's options beyond [`BackboneOptions`].
#[derive(Debug, Clone, PartialEq)]
pub struct GoogLeNetConfig {
    /// Build the auxiliary classifiers `aux1` and `aux2`. `torchvision.models.googlenet()` has
    /// them, and its ImageNet checkpoint holds them (untrained); turn them off to load a state
    /// dict saved from `googlenet(weights=...)`, which drops them.
    pub aux_logits: bool,
    /// Map ImageNet-normalised inputs to `(x − 0.5) / 0.5` first, as torchvision does for its
    /// pretrained weights (see [`Backbone::pretrained_cfg`]).
    pub transform_input: bool,
    /// Dropout before `fc`.
    pub dropout: f64,
    /// Dropout inside the auxiliary classifiers.
    pub dropout_aux: f64,
}

impl GoogLeNetConfig {
    /// `googlenet` as `torchvision.models.googlenet()` builds it without weights: auxiliary
    /// classifiers, no `transform_input`, dropout 0.2 and 0.7.
    pub fn by_name(name: &str) -> Option<Self> {
        (name == "googlenet").then_some(GoogLeNetConfig {
            aux_logits: true,
            transform_input: false,
            dropout: 0.2,
            dropout_aux: 0.7,
        })
    }
}

/// Every GoogLeNet convolution and linear layer starts truncated-normal with this deviation.
const STD: f64 = 0.01;

/// An Inception module: 1×1, 1×1 → 3×3, 1×1 → 3×3, 3×3 max-pool → 1×1, concatenated.
#[derive(Debug)]
struct Inception {
    branch1: BasicConv2d,
    branch2: [BasicConv2d; 2],
    branch3: [BasicConv2d; 2],
    branch4: BasicConv2d,
}

impl Inception {
    /// Channels: input, 1×1, 3×3 reduction, 3×3, second reduction, its 3×3, pool projection.
    fn new(p: &Path, c: [i64; 7]) -> Self {
        let [c_in, c1, c3r, c3, c5r, c5, pool] = c;
        let unit = |q: &Path, a, b, k| BasicConv2d::square(q, a, b, k, 1, k / 2, STD);
        Inception {
            branch1: unit(&(p / "branch1"), c_in, c1, 1),
            branch2: [
                unit(&(p / "branch2" / "0"), c_in, c3r, 1),
                unit(&(p / "branch2" / "1"), c3r, c3, 3),
            ],
            // The paper's 5×5 is a 3×3 in torchvision (and its weights).
            branch3: [
                unit(&(p / "branch3" / "0"), c_in, c5r, 1),
                unit(&(p / "branch3" / "1"), c5r, c5, 3),
            ],
            // `branch4.0` is the max-pool.
            branch4: unit(&(p / "branch4" / "1"), c_in, pool, 1),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let pair = |b: &[BasicConv2d; 2]| b[1].forward_t(&b[0].forward_t(x, train), train);
        let pooled = x.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], true);
        Tensor::cat(
            &[
                self.branch1.forward_t(x, train),
                pair(&self.branch2),
                pair(&self.branch3),
                self.branch4.forward_t(&pooled, train),
            ],
            1,
        )
    }
}

/// An auxiliary classifier: 4×4 average pool → 1×1 convolution to 128 → `fc1` (1024, ReLU) →
/// dropout → `fc2`.
#[derive(Debug)]
struct InceptionAux {
    conv: BasicConv2d,
    fc1: nn::Linear,
    fc2: nn::Linear,
    dropout: f64,
}

impl InceptionAux {
    fn new(p: &Path, c_in: i64, num_classes: i64, dropout: f64) -> Self {
        InceptionAux {
            conv: BasicConv2d::square(&(p / "conv"), c_in, 128, 1, 1, 0, STD),
            fc1: trunc_normal_linear(&(p / "fc1"), 2048, 1024, STD),
            fc2: trunc_normal_linear(&(p / "fc2"), 1024, num_classes, STD),
            dropout,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self
            .conv
            .forward_t(&x.adaptive_avg_pool2d([4, 4]), train)
            .flatten(1, -1);
        let mut y = self.fc1.forward(&y);
        let _ = y.relu_();
        self.fc2.forward(&y.dropout(self.dropout, train))
    }
}

/// The nine Inception modules' channels (input, 1×1, 3×3 reduction, 3×3, second reduction,
/// its 3×3, pool projection), `inception3a` … `inception5b`.
const MODULES: [(&str, [i64; 7]); 9] = [
    ("inception3a", [192, 64, 96, 128, 16, 32, 32]),
    ("inception3b", [256, 128, 128, 192, 32, 96, 64]),
    ("inception4a", [480, 192, 96, 208, 16, 48, 64]),
    ("inception4b", [512, 160, 112, 224, 24, 64, 64]),
    ("inception4c", [512, 128, 128, 256, 24, 64, 64]),
    ("inception4d", [512, 112, 144, 288, 32, 64, 64]),
    ("inception4e", [528, 256, 160, 320, 32, 128, 128]),
    ("inception5a", [832, 256, 160, 320, 32, 128, 128]),
    ("inception5b", [832, 384, 192, 384, 48, 128, 128]),
];

/// Indices in [`MODULES`] of the modules the auxiliary classifiers read: `inception4a`
/// (`aux1`) and `inception4d` (`aux2`).
const AUX_AFTER: [usize; 2] = [2, 5];

/// GoogLeNet with torchvision's names.
#[derive(Debug)]
pub struct GoogLeNet {
    conv1: BasicConv2d,
    conv2: BasicConv2d,
    conv3: BasicConv2d,
    /// `inception3a` … `inception5b`, in order.
    modules: Vec<Inception>,
    /// `aux1` and `aux2`: built when the configuration asks for them and there is a classifier.
    aux: Option<[InceptionAux; 2]>,
    /// `None` for an encoder (`num_classes` 0).
    fc: Option<nn::Linear>,
    dropout: f64,
    transform_input: bool,
}

/// Pyramid levels: `conv1` (stride 2), `conv3` (4), `inception3b` (8), `inception4e` (16),
/// `inception5b` (32).
const LEVELS: [(&str, i64, i64); 5] = [
    ("conv1", 64, 2),
    ("conv3", 192, 4),
    ("inception3b", 480, 8),
    ("inception4e", 832, 16),
    ("inception5b", 1024, 32),
];

impl GoogLeNet {
    /// Builds the network under `p`. With `num_classes` 0 there are neither `fc` nor auxiliary
    /// classifiers.
    pub fn new(p: &Path, cfg: &GoogLeNetConfig, opts: &BackboneOptions) -> Self {
        let modules = MODULES
            .iter()
            .map(|(name, c)| Inception::new(&(p / *name), *c))
            .collect();
        let n = opts.num_classes;
        let aux = (cfg.aux_logits && n > 0).then(|| {
            [
                InceptionAux::new(&(p / "aux1"), 512, n, cfg.dropout_aux),
                InceptionAux::new(&(p / "aux2"), 528, n, cfg.dropout_aux),
            ]
        });
        GoogLeNet {
            conv1: BasicConv2d::square(&(p / "conv1"), 3, 64, 7, 2, 3, STD),
            conv2: BasicConv2d::square(&(p / "conv2"), 64, 64, 1, 1, 0, STD),
            conv3: BasicConv2d::square(&(p / "conv3"), 64, 192, 3, 1, 1, STD),
            modules,
            aux,
            fc: (n > 0).then(|| trunc_normal_linear(&(p / "fc"), 1024, n, STD)),
            dropout: opts.dropout.unwrap_or(cfg.dropout),
            transform_input: cfg.transform_input,
        }
    }

    /// The five pyramid levels and, when `with_aux`, the auxiliary logits (`aux1`, `aux2`).
    fn run(&self, x: &Tensor, train: bool, with_aux: bool) -> (Vec<Tensor>, Vec<Tensor>) {
        let pool = |t: &Tensor, k: i64| t.max_pool2d([k, k], [2, 2], [0, 0], [1, 1], true);
        let x = if self.transform_input {
            transform_input(x)
        } else {
            x.shallow_clone()
        };
        let mut levels = Vec::with_capacity(LEVELS.len());
        let mut aux = Vec::new();
        let y = self.conv1.forward_t(&x, train);
        let z = self.conv2.forward_t(&pool(&y, 3), train);
        levels.push(y);
        let mut y = self.conv3.forward_t(&z, train);
        levels.push(y.shallow_clone());
        y = pool(&y, 3);
        for (i, module) in self.modules.iter().enumerate() {
            y = module.forward_t(&y, train);
            if let (true, Some(heads)) = (with_aux, &self.aux) {
                if let Some(h) = AUX_AFTER.iter().position(|&a| a == i) {
                    aux.push(heads[h].forward_t(&y, train));
                }
            }
            // `inception3b` and `inception4e` end their stage: a level, then the max-pool.
            let stage_pool = match i {
                1 => Some(3),
                6 => Some(2),
                _ => None,
            };
            if let Some(k) = stage_pool {
                levels.push(y.shallow_clone());
                y = pool(&y, k);
            }
        }
        levels.push(y);
        (levels, aux)
    }
}

impl Backbone for GoogLeNet {
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.fc {
            Some(fc) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    /// In training, the logits and `[aux1, aux2]` (network order; torchvision's named tuple
    /// lists `aux_logits2` first). The paper weighs each auxiliary loss 0.3.
    fn forward_aux_t(&self, x: &Tensor, train: bool) -> (Tensor, Vec<(f64, Tensor)>) {
        let (mut levels, aux) = self.run(x, train, train);
        let logits = match levels.pop() {
            Some(last) => self.forward_head(&global_pool(&last), train),
            None => self.forward_t(x, train),
        };
        (logits, aux.into_iter().map(|a| (0.3, a)).collect())
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        self.run(x, train, false).0
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self
            .features(x, train)
            .pop()
            .expect("GoogLeNet has five levels");
        global_pool(&last)
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        LEVELS
            .iter()
            .map(|&(module, channels, stride)| FeatureInfo {
                module: module.into(),
                channels,
                stride,
            })
            .collect()
    }

    /// IMAGENET1K_V1's: resize 256, crop 224, bilinear, and the ImageNet statistics when the
    /// model has `transform_input`; without it (the default, as `googlenet()` without weights),
    /// mean and standard deviation 0.5, which give those weights the same input.
    fn pretrained_cfg(&self) -> PretrainedCfg {
        ported_cfg(self.transform_input, 224, 256)
    }

    fn stages(&self) -> Vec<Stage> {
        vec![
            Stage::new("stem", &["conv1", "conv2", "conv3"]),
            Stage::new("inception3", &["inception3a", "inception3b"]),
            Stage::new(
                "inception4",
                &[
                    "inception4a",
                    "inception4b",
                    "inception4c",
                    "inception4d",
                    "inception4e",
                ],
            ),
            Stage::new("inception5", &["inception5a", "inception5b"]),
            // The auxiliary classifiers are sized by the classes too: they start fresh with `fc`.
            Stage::new("head", &["fc", "aux1", "aux2"]),
        ]
    }
}
