//! The classifier: a core backbone with a new head sized to the data's classes, loaded from
//! pretrained weights (the old head dropped with a message), frozen as the mode says.

use std::path::Path;

use anyhow::{Context, Result};
use ferrovis_core::backbone::{self, Backbone, BackboneOptions, PretrainedCfg};
use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_core::freeze::{self, FreezeOptions};
use ferrovis_core::knn::KnnClassifier;
use ferrovis_core::optim::GroupConfig;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::config::{Mode, TrainSection};

/// A backbone and the variables it lives in.
pub struct Classifier {
    /// The backbone's name.
    pub arch: String,
    /// The variables, named as PyTorch's state_dict.
    pub vs: VarStore,
    /// The network.
    pub model: Box<dyn Backbone>,
    /// A `knn` run's classifier on [`Backbone::knn_features`], in place of a head.
    pub knn: Option<KnnClassifier>,
}

impl Classifier {
    /// Builds `arch` with a `num_classes` head on `device`, for the input size its weights were
    /// trained at.
    pub fn new(arch: &str, num_classes: usize, dropout: f64, device: Device) -> Result<Self> {
        Self::at_size(arch, num_classes, dropout, None, device)
    }

    /// Builds `arch` for `image_size` inputs: transformers (ViT) size their positional
    /// embedding to it, and pretrained weights trained at another size are interpolated when
    /// they load; convolutional networks take any size and ignore it.
    pub fn at_size(
        arch: &str,
        num_classes: usize,
        dropout: f64,
        image_size: Option<i64>,
        device: Device,
    ) -> Result<Self> {
        let opts = BackboneOptions {
            num_classes: num_classes as i64,
            dropout: Some(dropout),
            image_size,
            ..Default::default()
        };
        Self::with_options(arch, &opts, device)
    }

    /// Builds `arch` with `opts` (the class count, dropout and image size among them).
    pub fn with_options(arch: &str, opts: &BackboneOptions, device: Device) -> Result<Self> {
        let vs = VarStore::new(device);
        let model = backbone::create(arch, &vs.root(), opts)
            .with_context(|| format!("building {arch} with {} classes", opts.num_classes))?;
        Ok(Self {
            arch: arch.to_string(),
            vs,
            model,
            knn: None,
        })
    }

    /// Loads pretrained weights strictly, except the classifier, which starts fresh when its size
    /// differs (the transfer-learning load); returns a one-line summary of what loaded.
    pub fn load_pretrained(&mut self, path: &Path) -> Result<String> {
        // A weights name (`resnet50`, `mobilenet_v2:IMAGENET1K_V1`) is its cached file.
        let file = ferrovis_core::run::resolve_weights(path)?.file;
        let path = file.as_path();
        let sd = checkpoint::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.load_pretrained_state_dict(sd, &path.display().to_string())
    }

    /// [`Self::load_pretrained`] for weights already read (from `source`, named in messages and
    /// the summary): a timm checkpoint renamed by [`ferrovis_core::timm`], say.
    pub fn load_pretrained_state_dict(
        &mut self,
        mut sd: StateDict,
        source: &str,
    ) -> Result<String> {
        let mut opts = LoadOptions::default()
            .strict(true)
            .reinit(&self.model.head_pattern())?;
        // Built without a head (a k-NN run): the checkpoint's classifier has nowhere to go.
        let head = regex::Regex::new(&self.model.head_pattern())?;
        if !self.vs.variables().keys().any(|k| head.is_match(k)) {
            opts = opts.skip(&self.model.classifier_pattern())?;
        }
        self.model
            .adapt_checkpoint(&mut sd)
            .with_context(|| format!("{source} does not fit {}", self.arch))?;
        let report = checkpoint::load_into(&self.vs, &sd, &opts)
            .with_context(|| format!("{source} does not fit {}", self.arch))?;
        Ok(format!("{source}: {}", report.summary()))
    }

    /// The normalisation and sizes the weights named `weights` expect: the registry's entry for
    /// a torchvision weight set (`vit_b_16:IMAGENET1K_SWAG_E2E_V1`: 384 px, bicubic), else the
    /// architecture's default weights'. (A timm checkpoint's come from its `config.json`.)
    pub fn pretrained_cfg(&self, weights: &str) -> PretrainedCfg {
        ferrovis_core::hub::registry::lookup(weights)
            .filter(|e| e.arch == self.arch)
            .and_then(|e| e.transforms)
            .unwrap_or_else(|| self.model.pretrained_cfg())
    }

    /// Freezes for `mode` and returns how the optimiser should group the parameters.
    pub fn apply_mode(&self, train: &TrainSection) -> Result<GroupConfig> {
        let stages = self.model.stages();
        let head = stages.last().map(|s| s.name.clone()).unwrap_or_default();
        let opts = FreezeOptions::default();
        let base = GroupConfig {
            weight_decay: train.weight_decay,
            ..Default::default()
        };
        Ok(match train.mode {
            // A k-NN run trains nothing either.
            Mode::FeatureExtract | Mode::Knn => {
                freeze::freeze_before_stage(&self.vs, &stages, &head, opts)?;
                base
            }
            Mode::FineTune => {
                freeze::set_trainable(&self.vs, true, opts, |_| true);
                GroupConfig {
                    backbone_lr_scale: train.backbone_lr_scale,
                    ..base
                }
            }
            Mode::Partial => {
                freeze::train_last_stages(&self.vs, &stages, train.partial_stages.max(1), opts);
                base
            }
            Mode::Gradual => {
                freeze::freeze_before_stage(&self.vs, &stages, &head, opts)?;
                GroupConfig {
                    lr_spread: Some(train.lr_spread),
                    include_frozen: true,
                    ..base
                }
            }
        })
    }

    /// Class scores of a batch that rank as the prediction does: the head's logits, or a k-NN
    /// run's class probabilities.
    pub fn scores(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| match &self.knn {
            Some(knn) => knn.probabilities(&self.model.knn_features(x, false)),
            None => self.model.forward_t(x, false),
        })
    }

    /// Class probabilities of a batch: the softmax of the logits, or a k-NN run's votes.
    pub fn probabilities(&self, x: &Tensor) -> Tensor {
        match &self.knn {
            Some(_) => self.scores(x),
            None => self.scores(x).softmax(-1, Kind::Float),
        }
    }

    /// Number of trainable (`requires_grad`) and of all parameters (buffers excluded).
    pub fn parameter_counts(&self) -> (i64, i64) {
        freeze::parameter_counts(&self.vs)
    }
}
