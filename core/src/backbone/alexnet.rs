//! AlexNet with torchvision's names: `features.N` numbers the convolutional trunk (convolutions
//! at 0, 3, 6, 8, 10, each followed by ReLU, max-pools at 2, 5, 12), `avgpool` makes it 6×6,
//! and `classifier.{1,4,6}` are the three linear layers (dropout at 0 and 3).
//!
//! torchvision follows the single-tower variant of Krizhevsky's "One weird trick for
//! parallelizing convolutional neural networks" (2014) rather than the original paper (Krizhevsky
//! et al., 2012): 64, 192, 384, 256, 256 channels, no local response normalisation, no grouped
//! convolutions, and it keeps PyTorch's default initialisation (Kaiming-uniform with a = √5,
//! biases uniform in ±1/√fan_in).

use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init, Module, Path};
use tch::Tensor;

use super::{
    feature_stages, global_pool, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage,
};

/// The five convolutions: `features.N` index, output channels, kernel, stride, padding.
const CONVS: [(usize, i64, i64, i64, i64); 5] = [
    (0, 64, 11, 4, 2),
    (3, 192, 5, 1, 2),
    (6, 384, 3, 1, 1),
    (8, 256, 3, 1, 1),
    (10, 256, 3, 1, 1),
];

/// A convolution as PyTorch initialises `nn.Conv2d` (the weights Kaiming-uniform with a = √5,
/// i.e. uniform in ±1/√fan_in, and so is the bias).
fn conv(p: &Path, c_in: i64, (c_out, kernel, stride, padding): (i64, i64, i64, i64)) -> nn::Conv2D {
    let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
    let cfg = nn::ConvConfig {
        stride,
        padding,
        ws_init: Init::Kaiming {
            dist: NormalOrUniform::Uniform,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
        },
        bs_init: Init::Uniform {
            lo: -bound,
            up: bound,
        },
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, kernel, cfg)
}

/// AlexNet with torchvision's names. Pyramid levels: the ReLUs after the first, second and
/// fifth convolutions (`features.1`, `features.4`, `features.11`; strides 4, 8, 16) and the
/// last max-pool (`features.12`, stride 32). The unpadded pools make these nominal: 224 gives
/// 55, 27, 13 and 6.
#[derive(Debug)]
pub struct AlexNet {
    convs: [nn::Conv2D; 5],
    /// `classifier.{1,4,6}`; `None` for an encoder (`num_classes` 0), which then skips the
    /// 58M-parameter fully connected layers.
    classifier: Option<[nn::Linear; 3]>,
    dropout: f64,
}

impl AlexNet {
    /// Builds the network under `p`; `opts.dropout` overrides the 0.5 of `classifier.0` and
    /// `classifier.3`.
    pub fn new(p: &Path, opts: &BackboneOptions) -> Self {
        let f = p / "features";
        let mut c_in = 3;
        let convs = CONVS.map(|(idx, c_out, k, s, pad)| {
            let c = conv(&(&f / idx.to_string()), c_in, (c_out, k, s, pad));
            c_in = c_out;
            c
        });
        let c = p / "classifier";
        let classifier = (opts.num_classes > 0).then(|| {
            [
                crate::nn::linear(&(&c / "1"), 256 * 6 * 6, 4096),
                crate::nn::linear(&(&c / "4"), 4096, 4096),
                crate::nn::linear(&(&c / "6"), 4096, opts.num_classes),
            ]
        });
        AlexNet {
            convs,
            classifier,
            dropout: opts.dropout.unwrap_or(0.5),
        }
    }

    fn pool(x: &Tensor) -> Tensor {
        x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
    }

    /// The whole trunk's output (`features.12`): what `torchvision.models.alexnet().features`
    /// returns.
    fn trunk(&self, x: &Tensor) -> Tensor {
        self.features(x, false)
            .pop()
            .unwrap_or_else(|| x.shallow_clone())
    }
}

impl Backbone for AlexNet {
    /// The whole `classifier` Sequential: an encoder keeps none of its layers.
    fn classifier_pattern(&self) -> String {
        r"^classifier\.".into()
    }

    /// `classifier.6` alone: torchvision has no dropout right before it.
    fn forward_head(&self, pooled: &Tensor, _train: bool) -> Tensor {
        match &self.classifier {
            Some(c) => c[2].forward(pooled),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, _train: bool) -> Vec<Tensor> {
        let [c0, c3, c6, c8, c10] = &self.convs;
        let l1 = c0.forward(x).relu_();
        let l2 = c3.forward(&Self::pool(&l1)).relu_();
        let y = c6.forward(&Self::pool(&l2)).relu_();
        let y = c8.forward(&y).relu_();
        let l3 = c10.forward(&y).relu_();
        let l4 = Self::pool(&l3);
        vec![l1, l2, l3, l4]
    }

    /// The 4096-d output of `classifier.5` (the ReLU after the second linear layer): what
    /// torchvision's transfer-learning recipe feeds a new `classifier.6`. An encoder (no
    /// classifier) returns the globally averaged 256 channels of `features.12` instead.
    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.trunk(x);
        let Some(c) = &self.classifier else {
            return global_pool(&last);
        };
        let y = last.adaptive_avg_pool2d([6, 6]).flatten(1, -1);
        let y = c[0].forward(&y.dropout(self.dropout, train)).relu_();
        c[1].forward(&y.dropout(self.dropout, train)).relu_()
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        [
            ("features.1", 64, 4),
            ("features.4", 192, 8),
            ("features.11", 256, 16),
            ("features.12", 256, 32),
        ]
        .into_iter()
        .map(|(module, channels, stride)| FeatureInfo {
            module: module.into(),
            channels,
            stride,
        })
        .collect()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg::imagenet()
    }

    fn stages(&self) -> Vec<Stage> {
        // Each group runs up to and including its max-pool.
        let mut stages = feature_stages(&[2, 5, 12], |k| {
            if k == 0 {
                "stem".to_string()
            } else {
                format!("block{}", k + 1)
            }
        });
        stages.push(Stage::new("fc", &["classifier.1", "classifier.4"]));
        stages.push(Stage::new("head", &["classifier.6"]));
        stages
    }
}
