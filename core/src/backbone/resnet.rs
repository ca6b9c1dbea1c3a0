//! ResNet (He et al., "Deep Residual Learning for Image Recognition", 2015) as torchvision builds
//! it: the stride of a bottleneck sits on its 3×3 convolution ("ResNet v1.5"), and
//! `replace_stride_with_dilation` turns the strides of `layer3`/`layer4` into dilation for
//! output stride 16 or 8 (DeepLab). ResNeXt (Xie et al., 2017) splits the bottleneck's 3×3 into
//! `groups` paths of `width_per_group` channels; Wide ResNet (Zagoruyko & Komodakis, 2016)
//! doubles that width.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{global_pool, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage};
use crate::error::{Error, Result};
use crate::nn::{conv2d, Conv2dSpec, Norm2d, NormLayer};

/// Which residual block a ResNet stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34), expansion 1.
    Basic,
    /// 1×1 → 3×3 → 1×1 (ResNet-50/101/152), expansion 4.
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> i64 {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// A ResNet variant: block type and number of blocks per stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Residual block type.
    pub block: BlockKind,
    /// Blocks in `layer1` … `layer4`.
    pub layers: [usize; 4],
    /// Groups of the bottleneck's 3×3 convolution (ResNeXt's cardinality; 1 for ResNet).
    pub groups: i64,
    /// Channels per group at `layer1` (64 for ResNet, 128 for Wide ResNet).
    pub width_per_group: i64,
}

impl ResNetConfig {
    /// The torchvision variants `resnet18` … `resnet152`, `resnext50_32x4d`,
    /// `resnext101_32x8d`, `resnext101_64x4d`, `wide_resnet50_2` and `wide_resnet101_2`.
    pub fn by_name(name: &str) -> Option<Self> {
        use BlockKind::{Basic, Bottleneck};
        let (block, layers, groups, width_per_group) = match name {
            "resnet18" => (Basic, [2, 2, 2, 2], 1, 64),
            "resnet34" => (Basic, [3, 4, 6, 3], 1, 64),
            "resnet50" => (Bottleneck, [3, 4, 6, 3], 1, 64),
            "resnet101" => (Bottleneck, [3, 4, 23, 3], 1, 64),
            "resnet152" => (Bottleneck, [3, 8, 36, 3], 1, 64),
            "resnext50_32x4d" => (Bottleneck, [3, 4, 6, 3], 32, 4),
            "resnext101_32x8d" => (Bottleneck, [3, 4, 23, 3], 32, 8),
            "resnext101_64x4d" => (Bottleneck, [3, 4, 23, 3], 64, 4),
            "wide_resnet50_2" => (Bottleneck, [3, 4, 6, 3], 1, 128),
            "wide_resnet101_2" => (Bottleneck, [3, 4, 23, 3], 1, 128),
            _ => return None,
        };
        Some(ResNetConfig {
            block,
            layers,
            groups,
            width_per_group,
        })
    }
}

/// The 1×1 projection (`downsample.0` conv, `downsample.1` BatchNorm) on a shortcut whose shape
/// changes.
#[derive(Debug)]
struct Downsample {
    conv: nn::Conv2D,
    bn: Norm2d,
}

impl Downsample {
    fn new(p: &Path, c_in: i64, c_out: i64, stride: i64, norm: NormLayer) -> Self {
        Downsample {
            conv: conv2d(&(p / "0"), c_in, c_out, Conv2dSpec::new(1).stride(stride)),
            bn: Norm2d::new(&(p / "1"), c_out, norm),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train)
    }
}

/// One residual block (`layerN.i`): Basic or Bottleneck.
#[derive(Debug)]
struct Block {
    convs: Vec<(nn::Conv2D, Norm2d)>,
    downsample: Option<Downsample>,
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: &Path,
        cfg: &ResNetConfig,
        norm: NormLayer,
        c_in: i64,
        planes: i64,
        stride: i64,
        dilation: i64,
        downsample: bool,
    ) -> Self {
        let kind = cfg.block;
        let c_out = planes * kind.expansion();
        // The bottleneck's inner width: `planes` for ResNet, scaled by the group width for
        // ResNeXt and Wide ResNet.
        let width = planes * cfg.width_per_group / 64 * cfg.groups;
        let unit = |i: usize, c_in: i64, c_out: i64, spec: Conv2dSpec| {
            (
                conv2d(&(p / format!("conv{i}")), c_in, c_out, spec),
                Norm2d::new(&(p / format!("bn{i}")), c_out, norm),
            )
        };
        let convs = match kind {
            BlockKind::Basic => vec![
                unit(
                    1,
                    c_in,
                    planes,
                    Conv2dSpec::new(3).stride(stride).dilation(dilation),
                ),
                unit(2, planes, planes, Conv2dSpec::new(3).dilation(dilation)),
            ],
            BlockKind::Bottleneck => vec![
                unit(1, c_in, width, Conv2dSpec::new(1)),
                unit(
                    2,
                    width,
                    width,
                    Conv2dSpec::new(3)
                        .stride(stride)
                        .dilation(dilation)
                        .groups(cfg.groups),
                ),
                unit(3, width, c_out, Conv2dSpec::new(1)),
            ],
        };
        let downsample =
            downsample.then(|| Downsample::new(&(p / "downsample"), c_in, c_out, stride, norm));
        Block { convs, downsample }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // In-place ReLU and residual add, as torchvision does: fewer allocations, same autograd.
        let last = self.convs.len() - 1;
        let mut y = x.shallow_clone();
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            y = bn.forward_t(&conv.forward(&y), train);
            if i < last {
                let _ = y.relu_();
            }
        }
        match &self.downsample {
            Some(d) => y += d.forward_t(x, train),
            None => y += x,
        }
        let _ = y.relu_();
        y
    }
}

/// A ResNet with torchvision's state_dict names (`conv1`, `bn1`, `layer1.0.conv1`, …, `fc`).
#[derive(Debug)]
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: Norm2d,
    layers: Vec<Vec<Block>>,
    /// The classifier; `None` for an encoder (`num_classes` 0), whose head returns the pooled
    /// features.
    fc: Option<nn::Linear>,
    info: Vec<FeatureInfo>,
}

impl ResNet {
    /// Builds the network under `p`. Output stride 16 dilates `layer4`, 8 dilates `layer3` and
    /// `layer4`. torchvision refuses dilation in Basic blocks; here both of their 3×3
    /// convolutions dilate, as segmentation_models.pytorch's ResNet-18/34 encoders do.
    pub fn new(p: &Path, cfg: &ResNetConfig, opts: &BackboneOptions) -> Result<Self> {
        let dilate = match opts.output_stride {
            32 => [false, false, false],
            16 => [false, false, true],
            8 => [false, true, true],
            os => {
                return Err(Error::Invalid(format!(
                    "ResNet output_stride {os} is not 8, 16 or 32"
                )))
            }
        };
        let conv1 = conv2d(
            &(p / "conv1"),
            3,
            64,
            Conv2dSpec::new(7).stride(2).padding(3),
        );
        let bn1 = Norm2d::new(&(p / "bn1"), 64, opts.norm);
        let mut info = vec![FeatureInfo {
            module: "bn1".into(),
            channels: 64,
            stride: 2,
        }];
        let (mut c_in, mut dilation, mut reduction) = (64, 1, 4);
        let mut layers = Vec::new();
        for (i, &n) in cfg.layers.iter().enumerate() {
            let planes = 64 << i;
            let mut stride = if i == 0 { 1 } else { 2 };
            // The first block of a dilated stage still uses the previous dilation for its 3×3.
            let previous_dilation = dilation;
            if i > 0 && dilate[i - 1] {
                dilation *= stride;
                stride = 1;
            }
            reduction *= stride;
            let lp = p / format!("layer{}", i + 1);
            let c_out = planes * cfg.block.expansion();
            let needs_downsample = stride != 1 || c_in != c_out;
            let mut blocks = vec![Block::new(
                &(&lp / "0"),
                cfg,
                opts.norm,
                c_in,
                planes,
                stride,
                previous_dilation,
                needs_downsample,
            )];
            for b in 1..n {
                blocks.push(Block::new(
                    &(&lp / b.to_string()),
                    cfg,
                    opts.norm,
                    c_out,
                    planes,
                    1,
                    dilation,
                    false,
                ));
            }
            c_in = c_out;
            layers.push(blocks);
            info.push(FeatureInfo {
                module: format!("layer{}", i + 1),
                channels: c_out,
                stride: reduction,
            });
        }
        let fc = (opts.num_classes > 0)
            .then(|| nn::linear(p / "fc", c_in, opts.num_classes, Default::default()));
        Ok(ResNet {
            conv1,
            bn1,
            layers,
            fc,
            info,
        })
    }

    fn stem(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.bn1.forward_t(&self.conv1.forward(x), train);
        let _ = y.relu_();
        y
    }
}

impl Backbone for ResNet {
    fn forward_head(&self, pooled: &Tensor, _train: bool) -> Tensor {
        match &self.fc {
            Some(fc) => fc.forward(pooled),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut out = vec![self.stem(x, train)];
        let mut y = out[0].max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for layer in &self.layers {
            for block in layer {
                y = block.forward_t(&y, train);
            }
            out.push(y.shallow_clone());
        }
        out
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self
            .features(x, train)
            .pop()
            .expect("ResNet has four stages");
        global_pool(&last)
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg::imagenet()
    }

    fn stages(&self) -> Vec<Stage> {
        vec![
            Stage::new("stem", &["conv1", "bn1"]),
            Stage::new("layer1", &["layer1"]),
            Stage::new("layer2", &["layer2"]),
            Stage::new("layer3", &["layer3"]),
            Stage::new("layer4", &["layer4"]),
            Stage::new("head", &["fc"]),
        ]
    }
}
