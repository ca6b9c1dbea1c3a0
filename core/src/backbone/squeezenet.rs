//! SqueezeNet (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters
//! and <0.5MB model size", 2016) with torchvision's names: `features.N` numbers the trunk (stem
//! convolution, ReLU, ceil-mode max-pools and Fire modules `features.N.{squeeze, expand1x1,
//! expand3x3}`), `classifier.1` is the final 1×1 convolution to the classes.
//!
//! Version 1.0 is the paper's; 1.1 is the SqueezeNet repository's cheaper revision (3×3 stem of
//! 64 channels, pools moved earlier), 2.4× fewer operations for the same accuracy. Neither has
//! the paper's bypass connections. torchvision initialises the convolutions Kaiming-uniform
//! (a = 0) and the final one N(0, 0.01), with zero biases.
//!
//! The classifier is dropout, the final convolution, ReLU and a global average pool, in that
//! order: since the ReLU sits between convolution and pool, the logits are not a function of
//! the pooled trunk features, and [`Backbone::forward_t`] runs the classifier on the whole map
//! as torchvision does. [`Backbone::pooled_features`] is the trunk's map averaged over space
//! (512 values) and [`Backbone::forward_head`] applies the same classifier to those, pool
//! first: a head trained on pooled features (feature extraction) sees what it will see there,
//! and its logits are the average of the logits over positions up to the ReLU.

use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init, Module, Path};
use tch::Tensor;

use super::{
    feature_stages, global_pool, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage,
};
use crate::error::{Error, Result};

/// One module of the trunk after the stem (convolution, ReLU, max-pool at `features.0..2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqueezeLayer {
    /// A Fire module: squeeze 1×1 to this many channels, then 1×1 and 3×3 expansions
    /// concatenated.
    Fire {
        /// Channels of the squeeze 1×1 convolution.
        squeeze: i64,
        /// Channels of the 1×1 expansion.
        expand1x1: i64,
        /// Channels of the 3×3 expansion.
        expand3x3: i64,
    },
    /// 3×3 max-pool, stride 2, ceil mode.
    Pool,
}

/// A SqueezeNet version: its stem and the modules after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqueezeNetConfig {
    /// Kernel of the stride-2, unpadded stem convolution (7 in 1.0, 3 in 1.1).
    pub stem_kernel: i64,
    /// Channels of the stem convolution.
    pub stem_channels: i64,
    /// `features.3` onwards; must end with a Fire module, and no two pools may follow each
    /// other.
    pub layers: Vec<SqueezeLayer>,
}

impl SqueezeNetConfig {
    /// `squeezenet1_0` and `squeezenet1_1`.
    pub fn by_name(name: &str) -> Option<Self> {
        let fire = |squeeze, expand| SqueezeLayer::Fire {
            squeeze,
            expand1x1: expand,
            expand3x3: expand,
        };
        use SqueezeLayer::Pool;
        let (stem_kernel, stem_channels, layers) = match name {
            "squeezenet1_0" => (
                7,
                96,
                vec![
                    fire(16, 64),
                    fire(16, 64),
                    fire(32, 128),
                    Pool,
                    fire(32, 128),
                    fire(48, 192),
                    fire(48, 192),
                    fire(64, 256),
                    Pool,
                    fire(64, 256),
                ],
            ),
            "squeezenet1_1" => (
                3,
                64,
                vec![
                    fire(16, 64),
                    fire(16, 64),
                    Pool,
                    fire(32, 128),
                    fire(32, 128),
                    Pool,
                    fire(48, 192),
                    fire(48, 192),
                    fire(64, 256),
                    fire(64, 256),
                ],
            ),
            _ => return None,
        };
        Some(SqueezeNetConfig {
            stem_kernel,
            stem_channels,
            layers,
        })
    }
}

/// The convolutions' initialisation: Kaiming-uniform with a = 0 (ReLU gain), zero bias.
fn conv(p: &Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        ws_init: Init::Kaiming {
            dist: NormalOrUniform::Uniform,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ReLU,
        },
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, kernel, cfg)
}

/// The Fire module: a 1×1 squeeze, then 1×1 and 3×3 expansions side by side, each with ReLU.
#[derive(Debug)]
struct Fire {
    squeeze: nn::Conv2D,
    expand1x1: nn::Conv2D,
    expand3x3: nn::Conv2D,
}

impl Fire {
    fn new(p: &Path, c_in: i64, squeeze: i64, expand1x1: i64, expand3x3: i64) -> Self {
        Fire {
            squeeze: conv(&(p / "squeeze"), c_in, squeeze, 1, 1, 0),
            expand1x1: conv(&(p / "expand1x1"), squeeze, expand1x1, 1, 1, 0),
            expand3x3: conv(&(p / "expand3x3"), squeeze, expand3x3, 3, 1, 1),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let s = self.squeeze.forward(x).relu_();
        Tensor::cat(
            &[
                self.expand1x1.forward(&s).relu_(),
                self.expand3x3.forward(&s).relu_(),
            ],
            1,
        )
    }
}

/// A module of the trunk after the stem.
#[derive(Debug)]
enum TrunkModule {
    /// Boxed: three convolutions against a pool's nothing.
    Fire(Box<Fire>),
    Pool,
}

/// SqueezeNet with torchvision's names. Pyramid levels: the stem's ReLU (`features.1`), then
/// the last module before each later pool and the last module of the trunk; nominal strides 2,
/// 4, 8, 16 (the unpadded stem and the ceil-mode pools make the true reductions slightly
/// different, e.g. 224 → 111, 55, 27, 13 in 1.1).
#[derive(Debug)]
pub struct SqueezeNet {
    stem: nn::Conv2D,
    /// `features.3` onwards.
    layers: Vec<TrunkModule>,
    /// `classifier.1`; `None` for an encoder (`num_classes` 0).
    classifier: Option<nn::Conv2D>,
    dropout: f64,
    info: Vec<FeatureInfo>,
    /// `features.N` index of each pyramid level.
    levels: Vec<usize>,
    /// `features.N` index of each pool after the stem's.
    pools: Vec<usize>,
}

impl SqueezeNet {
    /// Builds the network under `p`; `opts.dropout` overrides the classifier's 0.5. A
    /// configuration that ends with a pool or has two pools in a row is refused.
    pub fn new(p: &Path, cfg: &SqueezeNetConfig, opts: &BackboneOptions) -> Result<Self> {
        let pool_at = |i: usize| cfg.layers.get(i) == Some(&SqueezeLayer::Pool);
        let bad = cfg.layers.is_empty()
            || pool_at(0)
            || pool_at(cfg.layers.len() - 1)
            || (1..cfg.layers.len()).any(|i| pool_at(i) && pool_at(i - 1));
        if bad || cfg.stem_kernel < 1 || cfg.stem_channels < 1 {
            return Err(Error::Invalid(format!(
                "SqueezeNet: the modules after the stem must start and end with a Fire module \
                 and have no two pools in a row, got {:?}",
                cfg.layers
            )));
        }
        let f = p / "features";
        let stem = conv(&(&f / "0"), 3, cfg.stem_channels, cfg.stem_kernel, 2, 0);
        let mut info = vec![FeatureInfo {
            module: "features.1".into(),
            channels: cfg.stem_channels,
            stride: 2,
        }];
        let mut levels = vec![1];
        let mut pools = Vec::new();
        let (mut c_in, mut stride) = (cfg.stem_channels, 4);
        let mut layers = Vec::with_capacity(cfg.layers.len());
        for (k, layer) in cfg.layers.iter().enumerate() {
            let idx = k + 3;
            match *layer {
                SqueezeLayer::Fire {
                    squeeze,
                    expand1x1,
                    expand3x3,
                } => {
                    let fire =
                        Fire::new(&(&f / idx.to_string()), c_in, squeeze, expand1x1, expand3x3);
                    layers.push(TrunkModule::Fire(Box::new(fire)));
                    c_in = expand1x1 + expand3x3;
                }
                SqueezeLayer::Pool => {
                    layers.push(TrunkModule::Pool);
                    pools.push(idx);
                }
            }
            // A level is the last module at each resolution.
            if pool_at(k + 1) || k + 1 == cfg.layers.len() {
                info.push(FeatureInfo {
                    module: format!("features.{idx}"),
                    channels: c_in,
                    stride,
                });
                levels.push(idx);
                stride *= 2;
            }
        }
        let classifier = (opts.num_classes > 0).then(|| {
            let cfg = nn::ConvConfig {
                ws_init: Init::Randn {
                    mean: 0.0,
                    stdev: 0.01,
                },
                bs_init: Init::Const(0.0),
                ..Default::default()
            };
            nn::conv2d(p / "classifier" / "1", c_in, opts.num_classes, 1, cfg)
        });
        Ok(SqueezeNet {
            stem,
            layers,
            classifier,
            dropout: opts.dropout.unwrap_or(0.5),
            info,
            levels,
            pools,
        })
    }

    fn pool(x: &Tensor) -> Tensor {
        x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true)
    }

    /// The trunk (`features`), keeping the outputs of the modules numbered in `keep`
    /// (ascending) and computing nothing past the last of them.
    fn trunk(&self, x: &Tensor, keep: &[usize]) -> Vec<Tensor> {
        let last = keep.last().copied().unwrap_or(0);
        let mut out = Vec::with_capacity(keep.len());
        let mut y = self.stem.forward(x).relu_();
        if keep.contains(&1) {
            out.push(y.shallow_clone());
        }
        if last < 2 {
            return out;
        }
        y = Self::pool(&y);
        for (k, layer) in self.layers.iter().enumerate().take(last.saturating_sub(2)) {
            y = match layer {
                TrunkModule::Fire(fire) => fire.forward(&y),
                TrunkModule::Pool => Self::pool(&y),
            };
            if keep.contains(&(k + 3)) {
                out.push(y.shallow_clone());
            }
        }
        out
    }

    /// The whole trunk's output: what `torchvision.models.squeezenet1_x().features` returns.
    fn final_map(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() + 2;
        self.trunk(x, &[last])
            .pop()
            .unwrap_or_else(|| x.shallow_clone())
    }
}

impl Backbone for SqueezeNet {
    /// torchvision's classifier on the whole map: dropout, `classifier.1`, ReLU, then the
    /// average over positions (see the module documentation).
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.final_map(x);
        match &self.classifier {
            Some(c) => {
                let logits = c.forward(&y.dropout(self.dropout, train)).relu_();
                global_pool(&logits)
            }
            None => global_pool(&y),
        }
    }

    /// The classifier on pooled features `(N, 512)`: dropout, `classifier.1` as a linear map,
    /// ReLU. Pooling before rather than after the ReLU, it differs from
    /// [`Backbone::forward_t`]'s logits (see the module documentation).
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.classifier {
            Some(c) => {
                let y = pooled
                    .dropout(self.dropout, train)
                    .unsqueeze(-1)
                    .unsqueeze(-1);
                c.forward(&y).relu_().flatten(1, -1)
            }
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, _train: bool) -> Vec<Tensor> {
        self.trunk(x, &self.levels)
    }

    /// The trunk's 512-channel map averaged over space: the classifier's input, pooled.
    fn pooled_features(&self, x: &Tensor, _train: bool) -> Tensor {
        global_pool(&self.final_map(x))
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg::imagenet()
    }

    fn stages(&self) -> Vec<Stage> {
        // The stem with its pool, then each run of Fire modules up to and including its pool.
        let mut ends = vec![2];
        ends.extend(&self.pools);
        ends.push(self.layers.len() + 2);
        let mut stages = feature_stages(&ends, |k| {
            if k == 0 {
                "stem".to_string()
            } else {
                format!("stage{k}")
            }
        });
        stages.push(Stage::new("head", &["classifier.1"]));
        stages
    }
}
