//! Inception v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
//! 2015) as torchvision builds it, the layout of the TensorFlow-slim model its weights were
//! ported from: a stem of unpadded 3×3 convolutions and max-pools, three 35×35 modules
//! (`Mixed_5b..d`, the paper's figure 5), a grid reduction (`Mixed_6a`), four 17×17 modules with
//! factorised 1×7/7×1 convolutions (`Mixed_6b..e`, figure 6), a second reduction (`Mixed_7a`) and
//! two 8×8 modules with split 1×3/3×1 outputs (`Mixed_7b..c`, figure 7), every convolution
//! followed by BatchNorm (eps 0.001) and ReLU. The auxiliary classifier (`AuxLogits`, after
//! `Mixed_6e`) runs only in training ([`Backbone::forward_aux_t`]) and needs inputs of at least
//! 299×299 there; evaluation takes 75×75 and up.
//!
//! Names are torchvision's (`Conv2d_1a_3x3.conv`, `Mixed_6b.branch7x7_2.bn`, `AuxLogits.fc`,
//! `fc`).

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::googlenet::{ported_cfg, transform_input, trunc_normal_linear, BasicConv2d};
use super::{global_pool, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage};

/// Inception v3's options beyond [`BackboneOptions`].
#[derive(Debug, Clone, PartialEq)]
pub struct InceptionV3Config {
    /// Build the auxiliary classifier `AuxLogits`. torchvision's builder keeps it, pretrained;
    /// turn it off to load a state dict saved without it (`inception_v3(aux_logits=False)`).
    pub aux_logits: bool,
    /// Map ImageNet-normalised inputs to `(x − 0.5) / 0.5` first, as torchvision does for its
    /// pretrained weights (see [`Backbone::pretrained_cfg`]).
    pub transform_input: bool,
    /// Dropout before `fc`.
    pub dropout: f64,
}

impl InceptionV3Config {
    /// `inception_v3` as `torchvision.models.inception_v3()` builds it without weights: the
    /// auxiliary classifier, no `transform_input`, dropout 0.5.
    pub fn by_name(name: &str) -> Option<Self> {
        (name == "inception_v3").then_some(InceptionV3Config {
            aux_logits: true,
            transform_input: false,
            dropout: 0.5,
        })
    }
}

/// torchvision draws every convolution and linear weight truncated-normal with this deviation,
/// but `AuxLogits.fc` (0.001). It also marks `AuxLogits.conv1` with 0.01, on the `BasicConv2d`
/// rather than its convolution, where its initialisation never looks: that one gets 0.1 too.
const STD: f64 = 0.1;

/// The 3×3, stride-1, padding-1 average pool of the pool branches (padding counted, as PyTorch's
/// default).
fn avg_pool_3x3(x: &Tensor) -> Tensor {
    x.avg_pool2d([3, 3], [1, 1], [1, 1], false, true, None::<i64>)
}

/// The 3×3, stride-2 max-pool of the stem and the grid reductions.
fn max_pool_3x3_s2(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// Runs `units` one after the other.
fn chain(units: &[BasicConv2d], x: &Tensor, train: bool) -> Tensor {
    units
        .iter()
        .fold(x.shallow_clone(), |y, u| u.forward_t(&y, train))
}

/// A `BasicConv2d` named `name` under `p`, with torchvision's default deviation.
fn unit(p: &Path, name: &str, c_in: i64, c_out: i64, k: [i64; 2], pad: [i64; 2]) -> BasicConv2d {
    BasicConv2d::new(&(p / name), c_in, c_out, k, 1, pad, STD)
}

/// The same with a stride-2, unpadded 3×3 convolution (the grid reductions).
fn reduce(p: &Path, name: &str, c_in: i64, c_out: i64) -> BasicConv2d {
    BasicConv2d::new(&(p / name), c_in, c_out, [3, 3], 2, [0, 0], STD)
}

/// One of the eleven `Mixed_*` modules (A to E).
trait Mixed: std::fmt::Debug + Send {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor;
}

/// `Mixed_5b..d`: 1×1 | 1×1 → 5×5 | 1×1 → 3×3 → 3×3 | avg-pool → 1×1.
#[derive(Debug)]
struct InceptionA {
    branch1x1: BasicConv2d,
    branch5x5: [BasicConv2d; 2],
    branch3x3dbl: [BasicConv2d; 3],
    branch_pool: BasicConv2d,
}

impl InceptionA {
    fn new(p: &Path, c_in: i64, pool_features: i64) -> Self {
        InceptionA {
            branch1x1: unit(p, "branch1x1", c_in, 64, [1, 1], [0, 0]),
            branch5x5: [
                unit(p, "branch5x5_1", c_in, 48, [1, 1], [0, 0]),
                unit(p, "branch5x5_2", 48, 64, [5, 5], [2, 2]),
            ],
            branch3x3dbl: [
                unit(p, "branch3x3dbl_1", c_in, 64, [1, 1], [0, 0]),
                unit(p, "branch3x3dbl_2", 64, 96, [3, 3], [1, 1]),
                unit(p, "branch3x3dbl_3", 96, 96, [3, 3], [1, 1]),
            ],
            branch_pool: unit(p, "branch_pool", c_in, pool_features, [1, 1], [0, 0]),
        }
    }
}

impl Mixed for InceptionA {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        Tensor::cat(
            &[
                self.branch1x1.forward_t(x, train),
                chain(&self.branch5x5, x, train),
                chain(&self.branch3x3dbl, x, train),
                self.branch_pool.forward_t(&avg_pool_3x3(x), train),
            ],
            1,
        )
    }
}

/// `Mixed_6a`, 35×35 → 17×17: 3×3/2 | 1×1 → 3×3 → 3×3/2 | max-pool/2.
#[derive(Debug)]
struct InceptionB {
    branch3x3: BasicConv2d,
    branch3x3dbl: [BasicConv2d; 3],
}

impl InceptionB {
    fn new(p: &Path, c_in: i64) -> Self {
        InceptionB {
            branch3x3: reduce(p, "branch3x3", c_in, 384),
            branch3x3dbl: [
                unit(p, "branch3x3dbl_1", c_in, 64, [1, 1], [0, 0]),
                unit(p, "branch3x3dbl_2", 64, 96, [3, 3], [1, 1]),
                reduce(p, "branch3x3dbl_3", 96, 96),
            ],
        }
    }
}

impl Mixed for InceptionB {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        Tensor::cat(
            &[
                self.branch3x3.forward_t(x, train),
                chain(&self.branch3x3dbl, x, train),
                max_pool_3x3_s2(x),
            ],
            1,
        )
    }
}

/// `Mixed_6b..e`: 1×1 | 1×1 → 1×7 → 7×1 | 1×1 → 7×1 → 1×7 → 7×1 → 1×7 | avg-pool → 1×1.
#[derive(Debug)]
struct InceptionC {
    branch1x1: BasicConv2d,
    branch7x7: [BasicConv2d; 3],
    branch7x7dbl: [BasicConv2d; 5],
    branch_pool: BasicConv2d,
}

impl InceptionC {
    fn new(p: &Path, c_in: i64, c7: i64) -> Self {
        let (row, col) = (([1, 7], [0, 3]), ([7, 1], [3, 0]));
        InceptionC {
            branch1x1: unit(p, "branch1x1", c_in, 192, [1, 1], [0, 0]),
            branch7x7: [
                unit(p, "branch7x7_1", c_in, c7, [1, 1], [0, 0]),
                unit(p, "branch7x7_2", c7, c7, row.0, row.1),
                unit(p, "branch7x7_3", c7, 192, col.0, col.1),
            ],
            branch7x7dbl: [
                unit(p, "branch7x7dbl_1", c_in, c7, [1, 1], [0, 0]),
                unit(p, "branch7x7dbl_2", c7, c7, col.0, col.1),
                unit(p, "branch7x7dbl_3", c7, c7, row.0, row.1),
                unit(p, "branch7x7dbl_4", c7, c7, col.0, col.1),
                unit(p, "branch7x7dbl_5", c7, 192, row.0, row.1),
            ],
            branch_pool: unit(p, "branch_pool", c_in, 192, [1, 1], [0, 0]),
        }
    }
}

impl Mixed for InceptionC {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        Tensor::cat(
            &[
                self.branch1x1.forward_t(x, train),
                chain(&self.branch7x7, x, train),
                chain(&self.branch7x7dbl, x, train),
                self.branch_pool.forward_t(&avg_pool_3x3(x), train),
            ],
            1,
        )
    }
}

/// `Mixed_7a`, 17×17 → 8×8: 1×1 → 3×3/2 | 1×1 → 1×7 → 7×1 → 3×3/2 | max-pool/2.
#[derive(Debug)]
struct InceptionD {
    branch3x3: [BasicConv2d; 2],
    branch7x7x3: [BasicConv2d; 4],
}

impl InceptionD {
    fn new(p: &Path, c_in: i64) -> Self {
        InceptionD {
            branch3x3: [
                unit(p, "branch3x3_1", c_in, 192, [1, 1], [0, 0]),
                reduce(p, "branch3x3_2", 192, 320),
            ],
            branch7x7x3: [
                unit(p, "branch7x7x3_1", c_in, 192, [1, 1], [0, 0]),
                unit(p, "branch7x7x3_2", 192, 192, [1, 7], [0, 3]),
                unit(p, "branch7x7x3_3", 192, 192, [7, 1], [3, 0]),
                reduce(p, "branch7x7x3_4", 192, 192),
            ],
        }
    }
}

impl Mixed for InceptionD {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        Tensor::cat(
            &[
                chain(&self.branch3x3, x, train),
                chain(&self.branch7x7x3, x, train),
                max_pool_3x3_s2(x),
            ],
            1,
        )
    }
}

/// `Mixed_7b..c`: 1×1 | 1×1 → (1×3 ‖ 3×1) | 1×1 → 3×3 → (1×3 ‖ 3×1) | avg-pool → 1×1.
#[derive(Debug)]
struct InceptionE {
    branch1x1: BasicConv2d,
    branch3x3_1: BasicConv2d,
    /// The 1×3 (`_2a`) and 3×1 (`_2b`) convolutions, both on `branch3x3_1`'s output.
    branch3x3_2: [BasicConv2d; 2],
    branch3x3dbl: [BasicConv2d; 2],
    /// The 1×3 (`_3a`) and 3×1 (`_3b`) convolutions, both on `branch3x3dbl_2`'s output.
    branch3x3dbl_3: [BasicConv2d; 2],
    branch_pool: BasicConv2d,
}

impl InceptionE {
    fn new(p: &Path, c_in: i64) -> Self {
        let (row, col) = (([1, 3], [0, 1]), ([3, 1], [1, 0]));
        InceptionE {
            branch1x1: unit(p, "branch1x1", c_in, 320, [1, 1], [0, 0]),
            branch3x3_1: unit(p, "branch3x3_1", c_in, 384, [1, 1], [0, 0]),
            branch3x3_2: [
                unit(p, "branch3x3_2a", 384, 384, row.0, row.1),
                unit(p, "branch3x3_2b", 384, 384, col.0, col.1),
            ],
            branch3x3dbl: [
                unit(p, "branch3x3dbl_1", c_in, 448, [1, 1], [0, 0]),
                unit(p, "branch3x3dbl_2", 448, 384, [3, 3], [1, 1]),
            ],
            branch3x3dbl_3: [
                unit(p, "branch3x3dbl_3a", 384, 384, row.0, row.1),
                unit(p, "branch3x3dbl_3b", 384, 384, col.0, col.1),
            ],
            branch_pool: unit(p, "branch_pool", c_in, 192, [1, 1], [0, 0]),
        }
    }
}

impl Mixed for InceptionE {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let split = |pair: &[BasicConv2d; 2], y: &Tensor| {
            [pair[0].forward_t(y, train), pair[1].forward_t(y, train)]
        };
        let b3 = self.branch3x3_1.forward_t(x, train);
        let b3dbl = chain(&self.branch3x3dbl, x, train);
        let [b3a, b3b] = split(&self.branch3x3_2, &b3);
        let [bda, bdb] = split(&self.branch3x3dbl_3, &b3dbl);
        Tensor::cat(
            &[
                self.branch1x1.forward_t(x, train),
                b3a,
                b3b,
                bda,
                bdb,
                self.branch_pool.forward_t(&avg_pool_3x3(x), train),
            ],
            1,
        )
    }
}

/// `AuxLogits`: 5×5/3 average pool → 1×1 to 128 → 5×5 to 768 → global pool → `fc`.
#[derive(Debug)]
struct InceptionAux {
    conv0: BasicConv2d,
    conv1: BasicConv2d,
    fc: nn::Linear,
}

impl InceptionAux {
    fn new(p: &Path, c_in: i64, num_classes: i64) -> Self {
        InceptionAux {
            conv0: unit(p, "conv0", c_in, 128, [1, 1], [0, 0]),
            conv1: unit(p, "conv1", 128, 768, [5, 5], [0, 0]),
            fc: trunc_normal_linear(&(p / "fc"), 768, num_classes, 0.001),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x.avg_pool2d([5, 5], [3, 3], [0, 0], false, true, None::<i64>);
        let y = self
            .conv1
            .forward_t(&self.conv0.forward_t(&y, train), train);
        self.fc.forward(&global_pool(&y))
    }
}

/// The `Mixed_*` modules in order.
const MIXED: [&str; 11] = [
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c",
];

/// Indices in [`MIXED`] whose outputs are pyramid levels (`Mixed_5d`, `Mixed_6e`, `Mixed_7c`).
const MIXED_LEVELS: [usize; 3] = [2, 7, 10];

/// Index in [`MIXED`] of the module the auxiliary classifier reads (`Mixed_6e`).
const MIXED_AUX: usize = 7;

/// Pyramid levels: module, channels, nominal stride.
const LEVELS: [(&str, i64, i64); 5] = [
    ("Conv2d_2b_3x3", 64, 2),
    ("Conv2d_4a_3x3", 192, 4),
    ("Mixed_5d", 288, 8),
    ("Mixed_6e", 768, 16),
    ("Mixed_7c", 2048, 32),
];

/// Inception v3 with torchvision's names.
#[derive(Debug)]
pub struct InceptionV3 {
    /// `Conv2d_1a_3x3`, `Conv2d_2a_3x3`, `Conv2d_2b_3x3` (then a max-pool).
    stem1: [BasicConv2d; 3],
    /// `Conv2d_3b_1x1`, `Conv2d_4a_3x3` (then a max-pool).
    stem2: [BasicConv2d; 2],
    mixed: Vec<Box<dyn Mixed>>,
    /// Built when the configuration asks for it and there is a classifier.
    aux: Option<InceptionAux>,
    /// `None` for an encoder (`num_classes` 0).
    fc: Option<nn::Linear>,
    dropout: f64,
    transform_input: bool,
}

impl InceptionV3 {
    /// Builds the network under `p`. With `num_classes` 0 there are neither `fc` nor
    /// `AuxLogits`.
    pub fn new(p: &Path, cfg: &InceptionV3Config, opts: &BackboneOptions) -> Self {
        let stem = |name: &str, c_in, c_out, k, stride, pad| {
            BasicConv2d::square(&(p / name), c_in, c_out, k, stride, pad, STD)
        };
        let stem1 = [
            stem("Conv2d_1a_3x3", 3, 32, 3, 2, 0),
            stem("Conv2d_2a_3x3", 32, 32, 3, 1, 0),
            stem("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
        ];
        let stem2 = [
            stem("Conv2d_3b_1x1", 64, 80, 1, 1, 0),
            stem("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
        ];
        let m = |i: usize| p / MIXED[i];
        let mixed: Vec<Box<dyn Mixed>> = vec![
            Box::new(InceptionA::new(&m(0), 192, 32)),
            Box::new(InceptionA::new(&m(1), 256, 64)),
            Box::new(InceptionA::new(&m(2), 288, 64)),
            Box::new(InceptionB::new(&m(3), 288)),
            Box::new(InceptionC::new(&m(4), 768, 128)),
            Box::new(InceptionC::new(&m(5), 768, 160)),
            Box::new(InceptionC::new(&m(6), 768, 160)),
            Box::new(InceptionC::new(&m(7), 768, 192)),
            Box::new(InceptionD::new(&m(8), 768)),
            Box::new(InceptionE::new(&m(9), 1280)),
            Box::new(InceptionE::new(&m(10), 2048)),
        ];
        let n = opts.num_classes;
        InceptionV3 {
            stem1,
            stem2,
            mixed,
            aux: (cfg.aux_logits && n > 0).then(|| InceptionAux::new(&(p / "AuxLogits"), 768, n)),
            fc: (n > 0).then(|| trunc_normal_linear(&(p / "fc"), 2048, n, STD)),
            dropout: opts.dropout.unwrap_or(cfg.dropout),
            transform_input: cfg.transform_input,
        }
    }

    /// The five pyramid levels and, when `with_aux`, the auxiliary logits.
    fn run(&self, x: &Tensor, train: bool, with_aux: bool) -> (Vec<Tensor>, Vec<Tensor>) {
        let x = if self.transform_input {
            transform_input(x)
        } else {
            x.shallow_clone()
        };
        let mut levels = Vec::with_capacity(LEVELS.len());
        let mut aux = Vec::new();
        let y = chain(&self.stem1, &x, train);
        let z = chain(&self.stem2, &max_pool_3x3_s2(&y), train);
        levels.push(y);
        let mut y = max_pool_3x3_s2(&z);
        levels.push(z);
        for (i, module) in self.mixed.iter().enumerate() {
            y = module.forward_t(&y, train);
            if MIXED_LEVELS.contains(&i) {
                levels.push(y.shallow_clone());
            }
            match &self.aux {
                // The head's 5×5/3 pool and 5×5 convolution need a 17-pixel map (a 299
                // input): smaller inputs train without it rather than fail.
                Some(head)
                    if with_aux && i == MIXED_AUX && y.size()[2..].iter().all(|&s| s >= 17) =>
                {
                    aux.push(head.forward_t(&y, train))
                }
                _ => {}
            }
        }
        (levels, aux)
    }
}

impl Backbone for InceptionV3 {
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.fc {
            Some(fc) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    /// In training, the logits and `[AuxLogits]` (TF-slim's recipe, where the weights come from,
    /// weighs the auxiliary loss 0.4), when the input is at least 299×299 (smaller inputs give no
    /// auxiliary logits).
    fn forward_aux_t(&self, x: &Tensor, train: bool) -> (Tensor, Vec<(f64, Tensor)>) {
        let (mut levels, aux) = self.run(x, train, train);
        let logits = match levels.pop() {
            Some(last) => self.forward_head(&global_pool(&last), train),
            None => self.forward_t(x, train),
        };
        (logits, aux.into_iter().map(|a| (0.4, a)).collect())
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        self.run(x, train, false).0
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self
            .features(x, train)
            .pop()
            .expect("Inception v3 has five levels");
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

    /// IMAGENET1K_V1's: resize 342, crop 299, bilinear, and the ImageNet statistics when the
    /// model has `transform_input`; without it (the default, as `inception_v3()` without
    /// weights), mean and standard deviation 0.5, which give those weights the same input.
    fn pretrained_cfg(&self) -> PretrainedCfg {
        ported_cfg(self.transform_input, 299, 342)
    }

    fn stages(&self) -> Vec<Stage> {
        vec![
            Stage::new(
                "stem",
                &[
                    "Conv2d_1a_3x3",
                    "Conv2d_2a_3x3",
                    "Conv2d_2b_3x3",
                    "Conv2d_3b_1x1",
                    "Conv2d_4a_3x3",
                ],
            ),
            Stage::new("mixed5", &MIXED[0..3]),
            Stage::new("mixed6", &MIXED[3..8]),
            Stage::new("mixed7", &MIXED[8..11]),
            // The auxiliary classifier is sized by the classes too: it starts fresh with `fc`.
            Stage::new("head", &["fc", "AuxLogits"]),
        ]
    }
}
