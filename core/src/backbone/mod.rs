//! Pretrained-compatible backbones: one file per family, all behind the [`Backbone`] trait.
//!
//! Every classification architecture torchvision 0.28 ships (`list_models(module=torchvision.models)`:
//! 80, see [`NAMES`]) EfficientNet-Lite and DINOv2 (`dinov2_vits14` …, the reference's names). Variable paths equal the reference implementation's
//! state_dict keys (torchvision's; the `EfficientNet-PyTorch` port's for EfficientNet-Lite), so
//! their checkpoints load by name with [`crate::checkpoint::load_into`].
//!
//! ```no_run
//! use ferrovis_core::backbone::{self, BackboneOptions};
//! use ferrovis_core::checkpoint::{self, LoadOptions};
//! # fn main() -> ferrovis_core::Result<()> {
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! // A 2-class head on an ImageNet MobileNetV2: the 1000-class head starts fresh.
//! let model = backbone::create("mobilenet_v2", &vs.root(), &BackboneOptions::classes(2))?;
//! let opts = LoadOptions::default().strict(true).reinit(&model.head_pattern())?;
//! let report = checkpoint::load_file(&vs, "mobilenet_v2-b0353104.pth", &opts)?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

mod alexnet;
mod convnext;
mod densenet;
mod dinov2;
mod efficientnet;
mod efficientnet_lite;
mod googlenet;
mod inception;
mod maxvit;
mod mnasnet;
mod mobilenet_v2;
mod mobilenet_v3;
mod regnet;
mod resnet;
mod shufflenet_v2;
mod squeezenet;
pub(crate) mod swin;
mod vgg;
mod vit;

pub use alexnet::AlexNet;
pub use convnext::{ConvNext, ConvNextConfig};
pub use densenet::{DenseNet, DenseNetConfig, DENSENET_LEGACY_RENAME};
pub use dinov2::{
    resize_pos_embed, Dinov2, Dinov2Config, PosEmbedResize, PATCH_SIZE as DINOV2_PATCH_SIZE,
};
pub use efficientnet::{BlockKind, EfficientNet, EfficientNetConfig, StageSpec};
pub use efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig};
pub use googlenet::{GoogLeNet, GoogLeNetConfig};
pub use inception::{InceptionV3, InceptionV3Config};
pub use maxvit::{MaxVit, MaxVitConfig};
pub use mnasnet::{MnasNet, MnasNetConfig};
pub use mobilenet_v2::MobileNetV2;
pub use mobilenet_v3::{MobileNetV3, MobileNetV3Config};
pub use regnet::{RegNet, RegNetConfig, RegNetStage};
pub use resnet::{ResNet, ResNetConfig};
pub use shufflenet_v2::{ShuffleNetV2, ShuffleNetV2Config};
pub use squeezenet::{SqueezeLayer, SqueezeNet, SqueezeNetConfig};
pub use swin::{SwinConfig, SwinTransformer, SwinVersion};
pub use vgg::{Vgg, VggConfig};
pub use vit::{interpolate_embeddings, interpolate_pos_embedding, VisionTransformer, VitConfig};

use tch::nn::Path;
use tch::Tensor;

use crate::error::{Error, Result};

/// One level of a backbone's feature pyramid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureInfo {
    /// The module whose output this level is (a state_dict prefix such as `layer2`).
    pub module: String,
    /// Number of channels.
    pub channels: i64,
    /// Reduction from the input resolution.
    pub stride: i64,
}

/// How the weights expect images to be prepared (what torchvision's `weights.transforms()` does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PretrainedCfg {
    /// Square training/evaluation input size (the centre crop).
    pub input_size: i64,
    /// The shorter side is resized to this before the centre crop.
    pub resize_size: i64,
    /// Interpolation of the resize.
    pub interpolation: Interpolation,
    /// Per-channel mean subtracted from RGB in [0, 1].
    pub mean: [f64; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f64; 3],
}

/// Resize interpolation named by a pretrained configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Bilinear (antialiased when shrinking).
    Bilinear,
    /// Bicubic (antialiased when shrinking).
    Bicubic,
}

/// ImageNet mean, as torchvision normalises.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation, as torchvision normalises.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

impl PretrainedCfg {
    /// torchvision's classic ImageNet preprocessing: resize 256, crop 224, bilinear, ImageNet stats.
    pub fn imagenet() -> Self {
        PretrainedCfg {
            input_size: 224,
            resize_size: 256,
            interpolation: Interpolation::Bilinear,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

/// A named group of parameters, from stem to head, that can be frozen or given its own learning
/// rate as a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// A short name (`stem`, `layer3`, `head`).
    pub name: String,
    /// State-dict prefixes (without the trailing dot) of the modules in this stage.
    pub prefixes: Vec<String>,
}

impl Stage {
    fn new(name: impl Into<String>, prefixes: &[&str]) -> Self {
        Stage {
            name: name.into(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// What every image backbone offers the task crates.
pub trait Backbone: Send + std::fmt::Debug {
    /// Class logits `(N, num_classes)`; `train` selects batch statistics, dropout and stochastic
    /// depth.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_head(&self.pooled_features(x, train), train)
    }

    /// Class logits and, in training, the logits of the auxiliary classifiers that GoogLeNet
    /// (`aux1`, `aux2`) and Inception v3 (`AuxLogits`) attach to intermediate layers, each with
    /// the weight its loss gets in the training loss (the GoogLeNet paper's 0.3, TF-slim's
    /// Inception v3 recipe's 0.4). Without `train`, or for a family without auxiliary
    /// classifiers, the list is empty and the logits are [`Backbone::forward_t`]'s.
    fn forward_aux_t(&self, x: &Tensor, train: bool) -> (Tensor, Vec<(f64, Tensor)>) {
        (self.forward_t(x, train), Vec::new())
    }

    /// The classifier alone, from [`Backbone::pooled_features`] to logits (with its dropout when
    /// `train`): feature extraction trains only this, on features computed once.
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor;

    /// The feature pyramid, one tensor per [`Backbone::feature_info`] level, finest first.
    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor>;

    /// The last feature map before global pooling: the deepest level, followed by the head
    /// convolution where the family has one (MobileNetV2 and EfficientNet: 1280 channels). It
    /// is what `torchvision.models.<name>().features` returns, the one map of a detector built
    /// without a feature pyramid.
    fn final_features(&self, x: &Tensor, train: bool) -> Tensor {
        self.features(x, train)
            .pop()
            .unwrap_or_else(|| x.shallow_clone())
    }

    /// Channels of [`Backbone::final_features`].
    fn final_channels(&self) -> i64 {
        self.feature_info().last().map_or(0, |f| f.channels)
    }

    /// The input of the final linear classifier, before its dropout (`N, C`): globally pooled
    /// features for most families, the 4096-d `classifier.3` output for VGG. A new head for
    /// feature extraction is trained on these.
    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor;

    /// The embedding a k-nearest-neighbour classifier compares ([`crate::knn`]): the pooled
    /// features for most families, the class token alone for DINOv2 (its k-NN evaluation's).
    fn knn_features(&self, x: &Tensor, train: bool) -> Tensor {
        self.pooled_features(x, train)
    }

    /// Channels and stride of each pyramid level.
    fn feature_info(&self) -> Vec<FeatureInfo>;

    /// Preprocessing the pretrained weights expect.
    fn pretrained_cfg(&self) -> PretrainedCfg;

    /// Parameter groups from stem to head; the last one is the classifier.
    fn stages(&self) -> Vec<Stage>;

    /// A regex matching every classifier name a classification checkpoint of this architecture
    /// holds that the network built as an encoder (`num_classes` 0) lacks: the head, and the
    /// hidden fully connected layers of VGG, AlexNet, MobileNetV3 and MaxViT. Segmentation
    /// encoders and detection bodies skip these when they load ImageNet weights.
    fn classifier_pattern(&self) -> String {
        self.head_pattern()
    }

    /// Adapts a checkpoint of this architecture to this network before it loads, where the
    /// network was built for another input size than the checkpoint was trained at (ViT
    /// interpolates its positional embedding, as torchvision's `interpolate_embeddings`). Most
    /// families have nothing that depends on the input size and leave it as it is.
    fn adapt_checkpoint(&self, _sd: &mut crate::checkpoint::StateDict) -> Result<()> {
        Ok(())
    }

    /// A regex matching the classifier's state_dict names, to skip them when the class count
    /// changes (`^fc\.` for ResNet).
    fn head_pattern(&self) -> String {
        let head = self.stages().pop().map(|s| s.prefixes).unwrap_or_default();
        let alts: Vec<String> = head
            .iter()
            .map(|p| regex::escape(&format!("{p}.")))
            .collect();
        format!("^({})", alts.join("|"))
    }
}

/// Options common to every backbone.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneOptions {
    /// Size of the classifier (1000 for ImageNet weights). 0 builds an encoder with no
    /// classifier variables at all (VGG also drops its fully connected layers): its head returns
    /// the pooled features, as timm's `num_classes=0`, and a classification checkpoint loads into
    /// it once its head is skipped ([`Backbone::head_pattern`]).
    pub num_classes: i64,
    /// Output stride 32 (default), 16 or 8: ResNet (torchvision's
    /// `replace_stride_with_dilation`), MobileNetV2 and MobileNetV3 replace the last strides with dilation
    /// for dense prediction.
    pub output_stride: i64,
    /// Classifier dropout; `None` keeps the architecture's default.
    pub dropout: Option<f64>,
    /// Stochastic-depth (drop-path) probability of the last block; `None` keeps the default.
    pub stochastic_depth: Option<f64>,
    /// The normalisation layers: BatchNorm with the family's settings, BatchNorm with others, or
    /// torchvision's FrozenBatchNorm2d for detection backbones (ResNet and MobileNetV3; other
    /// families refuse anything but the default).
    pub norm: crate::nn::NormLayer,
    /// The square input size a transformer is built for (ViT's positional embedding, Swin's and
    /// MaxViT's attention grids): `None` keeps the size its weights were trained at, another
    /// size interpolates the pretrained positional embedding when weights load, as torchvision
    /// allows. Convolutional families take any size and ignore it.
    pub image_size: Option<i64>,
    /// How DINOv2 resizes its positional embedding to another token grid: `None` keeps the
    /// reference implementation's choice for the variant; a checkpoint read from timm or
    /// transformers names theirs, so that its tokens are theirs. Other families ignore it.
    pub pos_embed_resize: Option<PosEmbedResize>,
    /// TensorFlow's "SAME" padding in every convolution (timm's `tf_` ports of TensorFlow
    /// weights: `tf_efficientnet_b0`, `tf_efficientnetv2_s`, `tf_mobilenetv3_large_100`):
    /// EfficientNet (V1, V2) and MobileNetV3; other families refuse it.
    pub tf_same_padding: bool,
}

/// What a checkpoint's source builds differently from the ferrovis architecture's defaults:
/// timm's `tf_` ports' padding and BatchNorm, a DINOv2 source's positional-embedding resizing.
/// A Hub checkpoint says it ([`crate::hub::HubCheckpoint::build`]); a run records it, so
/// `val`, `predict` and `export` rebuild the network that trained.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceOptions {
    /// TensorFlow's SAME padding ([`BackboneOptions::tf_same_padding`]).
    pub tf_same_padding: bool,
    /// The normalisation, when not the architecture's own ([`BackboneOptions::norm`]).
    pub norm: Option<crate::nn::NormLayer>,
    /// DINOv2's positional-embedding resizing, when not the variant's own
    /// ([`BackboneOptions::pos_embed_resize`]).
    pub pos_embed_resize: Option<PosEmbedResize>,
}

impl SourceOptions {
    /// `base` with these options.
    pub fn apply(&self, base: BackboneOptions) -> BackboneOptions {
        BackboneOptions {
            tf_same_padding: self.tf_same_padding,
            norm: self.norm.unwrap_or(base.norm),
            pos_embed_resize: self.pos_embed_resize,
            ..base
        }
    }

    /// True when nothing differs from the architecture's defaults.
    pub fn is_default(&self) -> bool {
        *self == SourceOptions::default()
    }
}

impl Default for BackboneOptions {
    fn default() -> Self {
        BackboneOptions {
            num_classes: 1000,
            output_stride: 32,
            dropout: None,
            stochastic_depth: None,
            norm: crate::nn::NormLayer::BatchNorm,
            image_size: None,
            pos_embed_resize: None,
            tf_same_padding: false,
        }
    }
}

impl BackboneOptions {
    /// Defaults with `n` classes.
    pub fn classes(n: i64) -> Self {
        BackboneOptions {
            num_classes: n,
            ..Default::default()
        }
    }
}

/// Every name [`create`] accepts.
pub const NAMES: &[&str] = &[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "googlenet",
    "inception_v3",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_s",
    "efficientnet_v2_m",
    "efficientnet_v2_l",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_lite3",
    "efficientnet_lite4",
    "mnasnet0_5",
    "mnasnet0_75",
    "mnasnet1_0",
    "mnasnet1_3",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "regnet_y_400mf",
    "regnet_y_800mf",
    "regnet_y_1_6gf",
    "regnet_y_3_2gf",
    "regnet_y_8gf",
    "regnet_y_16gf",
    "regnet_y_32gf",
    "regnet_y_128gf",
    "regnet_x_400mf",
    "regnet_x_800mf",
    "regnet_x_1_6gf",
    "regnet_x_3_2gf",
    "regnet_x_8gf",
    "regnet_x_16gf",
    "regnet_x_32gf",
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    "convnext_large",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "squeezenet1_0",
    "squeezenet1_1",
    "alexnet",
    "maxvit_t",
    "swin_t",
    "swin_s",
    "swin_b",
    "swin_v2_t",
    "swin_v2_s",
    "swin_v2_b",
    "vit_b_16",
    "vit_b_32",
    "vit_l_16",
    "vit_l_32",
    "vit_h_14",
    "dinov2_vits14",
    "dinov2_vitb14",
    "dinov2_vitl14",
    "dinov2_vitg14",
    "dinov2_vits14_reg",
    "dinov2_vitb14_reg",
    "dinov2_vitl14_reg",
    "dinov2_vitg14_reg",
];

/// Builds a backbone by its torchvision name under path `p`.
pub fn create(name: &str, p: &Path, opts: &BackboneOptions) -> Result<Box<dyn Backbone>> {
    if opts.num_classes < 0 {
        return Err(Error::Invalid(format!(
            "{name}: num_classes must be at least 0 (0: an encoder whose classifier is empty), got {}",
            opts.num_classes
        )));
    }
    for (what, p) in [
        ("dropout", opts.dropout),
        ("stochastic_depth", opts.stochastic_depth),
    ] {
        if let Some(p) = p.filter(|p| !(0.0..=1.0).contains(p)) {
            return Err(Error::Invalid(format!(
                "{name}: {what} is a probability, got {p}"
            )));
        }
    }
    if ![8, 16, 32].contains(&opts.output_stride) {
        return Err(Error::Invalid(format!(
            "{name}: output_stride must be 8, 16 or 32, got {}",
            opts.output_stride
        )));
    }
    let resnet_family = ResNetConfig::by_name(name).is_some();
    if opts.output_stride != 32 && !(resnet_family || name.starts_with("mobilenet")) {
        return Err(Error::Invalid(format!(
            "{name}: output_stride {} needs dilation, which only ResNet and MobileNet support here \
             (with this encoder use output_stride 32)",
            opts.output_stride
        )));
    }
    let unknown = || {
        Error::Invalid(format!(
            "unknown backbone {name:?}; available: {}",
            NAMES.join(", ")
        ))
    };
    let efficientnet = EfficientNetConfig::by_name(name).is_some();
    let mobilenet_v3 = MobileNetV3Config::by_name(name).is_some();
    let batch_norm_with = matches!(opts.norm, crate::nn::NormLayer::BatchNormWith { .. });
    if opts.norm != crate::nn::NormLayer::BatchNorm
        && !(resnet_family || mobilenet_v3 || (efficientnet && batch_norm_with))
    {
        return Err(Error::Invalid(format!(
            "{name}: another normalisation than BatchNorm is only available for ResNet and \
             MobileNetV3 backbones here (EfficientNet takes BatchNorm with other settings)"
        )));
    }
    if opts.tf_same_padding && !(efficientnet || mobilenet_v3) {
        return Err(Error::Invalid(format!(
            "{name}: TensorFlow's SAME padding is built for EfficientNet and MobileNetV3 only"
        )));
    }
    if let Some(cfg) = ResNetConfig::by_name(name) {
        return Ok(Box::new(ResNet::new(p, &cfg, opts)?));
    }
    if let Some(cfg) = VggConfig::by_name(name) {
        return Ok(Box::new(Vgg::new(p, &cfg, opts)));
    }
    if let Some(cfg) = DenseNetConfig::by_name(name) {
        return Ok(Box::new(DenseNet::new(p, &cfg, opts)));
    }
    if let Some(cfg) = GoogLeNetConfig::by_name(name) {
        return Ok(Box::new(GoogLeNet::new(p, &cfg, opts)));
    }
    if let Some(cfg) = InceptionV3Config::by_name(name) {
        return Ok(Box::new(InceptionV3::new(p, &cfg, opts)));
    }
    if let Some(cfg) = EfficientNetConfig::by_name(name) {
        return Ok(Box::new(EfficientNet::new(p, &cfg, opts)?));
    }
    if let Some(cfg) = EfficientNetLiteConfig::by_name(name) {
        return Ok(Box::new(EfficientNetLite::new(p, &cfg, opts)));
    }
    if let Some(cfg) = MnasNetConfig::by_name(name) {
        return Ok(Box::new(MnasNet::new(p, &cfg, opts)?));
    }
    if name == "mobilenet_v2" {
        return Ok(Box::new(MobileNetV2::new(p, opts)));
    }
    if let Some(cfg) = MobileNetV3Config::by_name(name) {
        return Ok(Box::new(MobileNetV3::new(p, &cfg, opts)));
    }
    if let Some(cfg) = RegNetConfig::by_name(name) {
        return Ok(Box::new(RegNet::new(p, &cfg, opts)?));
    }
    if let Some(cfg) = ConvNextConfig::by_name(name) {
        return Ok(Box::new(ConvNext::new(p, &cfg, opts)?));
    }
    if let Some(cfg) = ShuffleNetV2Config::by_name(name) {
        return Ok(Box::new(ShuffleNetV2::new(p, &cfg, opts)?));
    }
    if let Some(cfg) = SqueezeNetConfig::by_name(name) {
        return Ok(Box::new(SqueezeNet::new(p, &cfg, opts)?));
    }
    if name == "alexnet" {
        return Ok(Box::new(AlexNet::new(p, opts)));
    }
    if let Some(cfg) = MaxVitConfig::by_name(name) {
        return Ok(Box::new(MaxVit::new(p, &cfg, opts)?));
    }
    if let Some(cfg) = SwinConfig::by_name(name) {
        return Ok(Box::new(SwinTransformer::new(p, &cfg, opts)));
    }
    if let Some(cfg) = VitConfig::by_name(name) {
        return Ok(Box::new(VisionTransformer::new(p, &cfg, opts)?));
    }
    if let Some(cfg) = Dinov2Config::by_name(name) {
        return Ok(Box::new(Dinov2::new(p, &cfg, opts)?));
    }
    Err(unknown())
}

/// torchvision's `_make_divisible`: round `v` to the nearest multiple of `divisor`, never going
/// below 90 % of `v`. Used for width multipliers.
pub(crate) fn make_divisible(v: f64, divisor: i64) -> i64 {
    let d = divisor as f64;
    let mut new_v = divisor.max(((v + d / 2.0) as i64) / divisor * divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

/// Stages over a torchvision `features` Sequential: `features.0 ..= ends[0]`, then
/// `ends[0] + 1 ..= ends[1]`, …, the k-th named `name(k)` (how VGG and MobileNetV3 group theirs).
pub(crate) fn feature_stages(ends: &[usize], name: impl Fn(usize) -> String) -> Vec<Stage> {
    let mut start = 0;
    ends.iter()
        .enumerate()
        .map(|(k, &end)| {
            let prefixes = (start..=end).map(|i| format!("features.{i}")).collect();
            start = end + 1;
            Stage {
                name: name(k),
                prefixes,
            }
        })
        .collect()
}

/// A plain transformer's blocks in four stages `blocks0` … `blocks3` for freezing and layer-wise
/// learning rates (every ViT and DINOv2 depth is a multiple of four), the block `i` named
/// `block(i)`; the final norm `final_norm` goes with the last blocks, as a stage's last norm does
/// in the other families, so `partial` with 2 stages trains the last blocks and the head.
pub(crate) fn block_group_stages(
    depth: usize,
    block: impl Fn(usize) -> String,
    final_norm: &str,
) -> Vec<Stage> {
    const GROUPS: usize = 4;
    let per_group = depth.div_ceil(GROUPS);
    (0..GROUPS)
        .map(|g| {
            let mut prefixes: Vec<String> = (g * per_group..((g + 1) * per_group).min(depth))
                .map(&block)
                .collect();
            if g + 1 == GROUPS {
                prefixes.push(final_norm.to_string());
            }
            Stage {
                name: format!("blocks{g}"),
                prefixes,
            }
        })
        .collect()
}

/// The outputs of the `features.N` modules listed in `indices` (ascending) of a torchvision
/// `features` Sequential laid out as MobileNets lay it: the stem (0), the blocks (1 ..= n, run by
/// `block`), the last convolution (n + 1). No module past the last one asked for is computed.
pub(crate) fn features_at<B>(
    x: &Tensor,
    indices: &[usize],
    stem: &crate::nn::ConvNormAct,
    blocks: &[B],
    block: impl Fn(&B, &Tensor) -> Tensor,
    last_conv: &crate::nn::ConvNormAct,
    train: bool,
) -> Vec<Tensor> {
    let last = indices.iter().copied().max().unwrap_or(0);
    let mut out = Vec::with_capacity(indices.len());
    let mut y = stem.forward_t(x, train);
    if indices.contains(&0) {
        out.push(y.shallow_clone());
    }
    for (i, b) in blocks.iter().enumerate().take(last) {
        y = block(b, &y);
        if indices.contains(&(i + 1)) {
            out.push(y.shallow_clone());
        }
    }
    if last > blocks.len() {
        out.push(last_conv.forward_t(&y, train));
    }
    out
}

/// Global average pool to `(N, C)`.
pub(crate) fn global_pool(x: &Tensor) -> Tensor {
    x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_list_the_available_ones() {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let err = create("resnet19", &vs.root(), &BackboneOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown backbone \"resnet19\"") && err.contains("resnet18, resnet34"),
            "{err}"
        );
        let opts = BackboneOptions {
            output_stride: 8,
            ..Default::default()
        };
        let err = create("vgg11", &vs.root(), &opts).unwrap_err().to_string();
        assert!(err.contains("only ResNet and MobileNet"), "{err}");
    }

    #[test]
    fn dilated_encoders_keep_the_resolution_past_their_output_stride() {
        let x = Tensor::zeros([1, 3, 64, 64], (tch::Kind::Float, tch::Device::Cpu));
        for (name, os) in [
            ("resnet18", 8),
            ("resnet50", 16),
            ("mobilenet_v2", 16),
            ("mobilenet_v2", 8),
        ] {
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let opts = BackboneOptions {
                num_classes: 0,
                output_stride: os,
                ..Default::default()
            };
            let m = create(name, &vs.root(), &opts).expect(name);
            let strides: Vec<i64> = m.feature_info().iter().map(|f| f.stride).collect();
            let expected: Vec<i64> = [2, 4, 8, 16, 32].iter().map(|&s: &i64| s.min(os)).collect();
            assert_eq!(strides, expected, "{name} at {os}");
            let feats = tch::no_grad(|| m.features(&x, false));
            let sizes: Vec<i64> = feats.iter().map(|f| f.size()[2]).collect();
            let expected: Vec<i64> = expected.iter().map(|s| 64 / s).collect();
            assert_eq!(sizes, expected, "{name} at {os}");
        }
    }

    #[test]
    fn make_divisible_matches_torchvision() {
        // Values torchvision's _make_divisible gives for these inputs.
        assert_eq!(make_divisible(32.0 * 1.1, 8), 32);
        assert_eq!(make_divisible(16.0 * 1.4, 8), 24);
        assert_eq!(make_divisible(40.0 * 1.8, 8), 72);
        assert_eq!(make_divisible(3.0, 8), 8);
    }
}
