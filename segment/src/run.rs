//! What a segmentation run folder records besides the engine's files (`<run>/segment.json`),
//! so `val`, `predict` and `export` need no flags.

use serde::{Deserialize, Serialize};

use crate::config::InferMode;
use crate::model::ModelSpec;

/// `<run>/segment.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The network.
    pub model: ModelSpec,
    /// Class names by index.
    pub names: Vec<String>,
    /// Normalisation of the images (the encoder's).
    pub mean: [f64; 3],
    /// Normalisation of the images (the encoder's).
    pub std: [f64; 3],
    /// Validation inference mode.
    pub infer: InferMode,
    /// Its size.
    pub infer_size: usize,
}

impl ferrovis_core::run::RunMeta for RunMeta {
    const FILE: &'static str = "segment.json";
    const TASK: &'static str = "segment";
}
