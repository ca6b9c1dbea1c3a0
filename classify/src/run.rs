//! What a classification run folder records besides the engine's files (`<run>/classify.json`),
//! so `val`, `predict` and `export` need no flags.

use std::path::PathBuf;

use ferrovis_core::backbone::SourceOptions;
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
    /// architecture's defaults, so `val`, `predict` and `export` rebuild that network.
    #[serde(default, skip_serializing_if = "SourceOptions::is_default")]
    pub build: SourceOptions,
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
