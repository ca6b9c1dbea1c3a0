//! What a classification run folder records besides the engine's files (`<run>/classify.json`),
//! so `val`, `predict` and `export` need no flags.

use std::path::PathBuf;

use ferrovis_core::backbone::{BackboneOptions, PosEmbedResize};
use ferrovis_core::nn::NormLayer;
use ferrovis_core::run::RunDir;
use ferrovis_data::transform::ClassifyTransform;
use serde::{Deserialize, Serialize};

/// `<run>/classify.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Backbone name.
    pub arch: String,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Head dropout.
    pub dropout: f64,
    /// The evaluation preprocessing.
    pub transform: ClassifyTransform,
    /// How the backbone was built where a Hub checkpoint's source differs from the
    /// architecture's defaults (timm's `tf_` ports' padding and BatchNorm, DINOv2's
    /// positional-embedding resizing), so `val`, `predict` and `export` rebuild that network.
    #[serde(default, skip_serializing_if = "BuildOptions::is_default")]
    pub build: BuildOptions,
}

/// The backbone options a run was built with beyond its architecture and size.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildOptions {
    /// TensorFlow's SAME padding.
    pub tf_same_padding: bool,
    /// The normalisation, when not the architecture's own.
    pub norm: Option<NormLayer>,
    /// DINOv2's positional-embedding resizing, when not the variant's own.
    pub pos_embed_resize: Option<PosEmbedResize>,
}

impl BuildOptions {
    /// The options of `opts` this record keeps.
    pub fn of(opts: &BackboneOptions) -> Self {
        BuildOptions {
            tf_same_padding: opts.tf_same_padding,
            norm: (opts.norm != NormLayer::BatchNorm).then_some(opts.norm),
            pos_embed_resize: opts.pos_embed_resize,
        }
    }

    /// `base` with these options.
    pub fn apply(&self, base: BackboneOptions) -> BackboneOptions {
        BackboneOptions {
            tf_same_padding: self.tf_same_padding,
            norm: self.norm.unwrap_or(base.norm),
            pos_embed_resize: self.pos_embed_resize,
            ..base
        }
    }

    fn is_default(&self) -> bool {
        *self == BuildOptions::default()
    }
}

impl ferrovis_core::run::RunMeta for RunMeta {
    const FILE: &'static str = "classify.json";
    const TASK: &'static str = "classify";
}

/// `<run>/knn.safetensors`: a `train.mode = "knn"` run's classifier (the training images'
/// features and labels); its `weights/` hold the backbone alone.
pub fn knn_file(run: &RunDir) -> PathBuf {
    run.path().join("knn.safetensors")
}
