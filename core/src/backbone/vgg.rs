//! VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks", 2014) with torchvision's layout:
//! `features.N` numbers every layer of the convolutional trunk (conv, [BatchNorm], ReLU, max-pool),
//! `classifier.{0,3,6}` are the three linear layers.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{feature_stages, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage};
use crate::nn::{conv2d, BatchNorm2d, Conv2dSpec};

/// One entry of a VGG configuration: a 3×3 convolution to `n` channels, or a 2×2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggLayer {
    /// 3×3 convolution, padding 1, to this many channels, then (BatchNorm and) ReLU.
    Conv(i64),
    /// 2×2 max-pool, stride 2.
    Pool,
}

/// A VGG variant: the layer list of the paper's table 1 and whether BatchNorm follows each conv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VggConfig {
    /// The convolutional trunk.
    pub layers: Vec<VggLayer>,
    /// `vggNN_bn`.
    pub batch_norm: bool,
}

impl VggConfig {
    /// `vgg11`, `vgg13`, `vgg16`, `vgg19` and their `_bn` versions (configurations A, B, D, E).
    pub fn by_name(name: &str) -> Option<Self> {
        let (depth, batch_norm) = match name.strip_suffix("_bn") {
            Some(d) => (d, true),
            None => (name, false),
        };
        // Convolutions per block for each configuration; every block ends with a max-pool.
        let per_block: [usize; 5] = match depth {
            "vgg11" => [1, 1, 2, 2, 2],
            "vgg13" => [2, 2, 2, 2, 2],
            "vgg16" => [2, 2, 3, 3, 3],
            "vgg19" => [2, 2, 4, 4, 4],
            _ => return None,
        };
        let widths = [64, 128, 256, 512, 512];
        let mut layers = Vec::new();
        for (n, w) in per_block.iter().zip(widths) {
            layers.extend(std::iter::repeat_n(VggLayer::Conv(w), *n));
            layers.push(VggLayer::Pool);
        }
        Some(VggConfig { layers, batch_norm })
    }
}

/// A convolution of the trunk with its optional BatchNorm; ReLU follows.
#[derive(Debug)]
struct ConvUnit {
    conv: nn::Conv2D,
    bn: Option<BatchNorm2d>,
}

/// VGG with torchvision's names.
#[derive(Debug)]
pub struct Vgg {
    /// `(index in features, unit)` for each convolution; pools sit between blocks.
    blocks: Vec<Vec<ConvUnit>>,
    /// `classifier.{0,3,6}`; `None` for an encoder (`num_classes` 0), which then skips the
    /// 120M-parameter fully connected layers.
    classifier: Option<[nn::Linear; 3]>,
    dropout: f64,
    info: Vec<FeatureInfo>,
    /// `features.N` index of each block's max-pool (for stage prefixes).
    pool_index: Vec<usize>,
}

impl Vgg {
    /// Builds the network under `p`.
    pub fn new(p: &Path, cfg: &VggConfig, opts: &BackboneOptions) -> Self {
        let f = p / "features";
        let (mut idx, mut c_in) = (0usize, 3i64);
        let mut blocks = vec![Vec::new()];
        let mut pool_index = Vec::new();
        for layer in &cfg.layers {
            match *layer {
                VggLayer::Conv(c_out) => {
                    let conv = conv2d(
                        &(&f / idx.to_string()),
                        c_in,
                        c_out,
                        Conv2dSpec::new(3).bias(true),
                    );
                    let bn = cfg
                        .batch_norm
                        .then(|| BatchNorm2d::new(&(&f / (idx + 1).to_string()), c_out));
                    idx += if cfg.batch_norm { 3 } else { 2 };
                    blocks
                        .last_mut()
                        .expect("at least one block")
                        .push(ConvUnit { conv, bn });
                    c_in = c_out;
                }
                VggLayer::Pool => {
                    pool_index.push(idx);
                    idx += 1;
                    blocks.push(Vec::new());
                }
            }
        }
        blocks.pop(); // the configuration ends with a pool
        let c = p / "classifier";
        let linear = |i: &str, a, b| nn::linear(&c / i, a, b, Default::default());
        let classifier = (opts.num_classes > 0).then(|| {
            [
                linear("0", 512 * 7 * 7, 4096),
                linear("3", 4096, 4096),
                linear("6", 4096, opts.num_classes),
            ]
        });
        // Levels: each block's output before its pool (strides 1..16 → we expose 2..16), then
        // the final pooled map at stride 32.
        let widths: Vec<i64> = cfg
            .layers
            .iter()
            .scan(3, |c, l| {
                if let VggLayer::Conv(w) = l {
                    *c = *w;
                }
                Some((*l, *c))
            })
            .filter(|(l, _)| *l == VggLayer::Pool)
            .map(|(_, c)| c)
            .collect();
        let mut info: Vec<FeatureInfo> = (1..4)
            .map(|b| FeatureInfo {
                module: format!("features.{}", pool_index[b] - 1),
                channels: widths[b],
                stride: 1 << b,
            })
            .collect();
        info.push(FeatureInfo {
            module: format!("features.{}", pool_index[4] - 1),
            channels: widths[4],
            stride: 16,
        });
        info.push(FeatureInfo {
            module: format!("features.{}", pool_index[4]),
            channels: widths[4],
            stride: 32,
        });
        Vgg {
            blocks,
            classifier,
            dropout: opts.dropout.unwrap_or(0.5),
            info,
            pool_index,
        }
    }

    fn block(&self, b: usize, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.shallow_clone();
        for unit in &self.blocks[b] {
            y = unit.conv.forward(&y);
            if let Some(bn) = &unit.bn {
                y = bn.forward_t(&y, train);
            }
            y = y.relu();
        }
        y
    }

    fn pool(x: &Tensor) -> Tensor {
        x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
    }

    /// The names of the trunk's activations in order, as the style-transfer literature calls
    /// them: `conv{b}_{i}` (the convolution's output, after BatchNorm in `_bn` models),
    /// `relu{b}_{i}`, `pool{b}`, blocks and convolutions counted from 1.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (b, block) in self.blocks.iter().enumerate() {
            for i in 0..block.len() {
                names.push(format!("conv{}_{}", b + 1, i + 1));
                names.push(format!("relu{}_{}", b + 1, i + 1));
            }
            names.push(format!("pool{}", b + 1));
        }
        names
    }

    /// The activations named in `wanted` (see [`Vgg::layer_names`]), in that order; the trunk
    /// runs only as deep as the deepest of them. An unknown name is an error listing the known.
    pub fn activations(
        &self,
        x: &Tensor,
        wanted: &[String],
        train: bool,
    ) -> crate::Result<Vec<Tensor>> {
        let names = self.layer_names();
        let mut deepest = 0;
        for w in wanted {
            let i = names.iter().position(|n| n == w).ok_or_else(|| {
                crate::Error::Invalid(format!(
                    "VGG has no layer {w:?}; layers are {}",
                    names.join(", ")
                ))
            })?;
            deepest = deepest.max(i);
        }
        let mut found: Vec<Option<Tensor>> = wanted.iter().map(|_| None).collect();
        let mut put = |name: &str, t: &Tensor| {
            for (slot, w) in found.iter_mut().zip(wanted) {
                if w == name {
                    *slot = Some(t.shallow_clone());
                }
            }
        };
        let mut y = x.shallow_clone();
        let mut index = 0;
        'blocks: for (b, block) in self.blocks.iter().enumerate() {
            for (i, unit) in block.iter().enumerate() {
                y = unit.conv.forward(&y);
                if let Some(bn) = &unit.bn {
                    y = bn.forward_t(&y, train);
                }
                put(&format!("conv{}_{}", b + 1, i + 1), &y);
                y = y.relu();
                put(&format!("relu{}_{}", b + 1, i + 1), &y);
                index += 2;
                if index > deepest {
                    break 'blocks;
                }
            }
            y = Self::pool(&y);
            put(&format!("pool{}", b + 1), &y);
            index += 1;
            if index > deepest {
                break;
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// Output of block `b` before its pool, for every block: the taps style transfer and U-Net use.
    pub fn block_outputs(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut outs = Vec::with_capacity(self.blocks.len());
        let mut y = x.shallow_clone();
        for b in 0..self.blocks.len() {
            if b > 0 {
                y = Self::pool(&y);
            }
            y = self.block(b, &y, train);
            outs.push(y.shallow_clone());
        }
        outs
    }
}

impl Backbone for Vgg {
    /// The whole `classifier` Sequential: an encoder keeps none of its layers.
    fn classifier_pattern(&self) -> String {
        r"^classifier\.".into()
    }

    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.classifier {
            Some(c) => c[2].forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let outs = self.block_outputs(x, train);
        let mut levels: Vec<Tensor> = outs[1..].iter().map(Tensor::shallow_clone).collect();
        levels.push(Self::pool(&outs[4]));
        levels
    }

    /// The 4096-d output of `classifier.3` (after ReLU): what torchvision's transfer-learning
    /// recipe feeds a new `classifier.6`. An encoder (no classifier) returns the globally
    /// averaged 512 channels of the last block instead.
    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = Self::pool(&self.block_outputs(x, train).pop().expect("five blocks"));
        let Some(c) = &self.classifier else {
            return last.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        };
        let y = last.adaptive_avg_pool2d([7, 7]).flatten(1, -1);
        let y = c[0].forward(&y).relu().dropout(self.dropout, train);
        c[1].forward(&y).relu()
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg::imagenet()
    }

    fn stages(&self) -> Vec<Stage> {
        // Each block is its convolution indices up to and including its pool.
        let mut stages = feature_stages(&self.pool_index, |b| format!("block{}", b + 1));
        stages.push(Stage::new("fc", &["classifier.0", "classifier.3"]));
        stages.push(Stage::new("head", &["classifier.6"]));
        stages
    }
}
