//! Checkpoints from the Hugging Face Hub that carry their own configuration (`hf-hub:ORG/NAME`
//! or a folder with the same files): timm's ([`crate::timm`]) and transformers' DINOv2
//! ([`crate::transformers`]), each read into the names of the ferrovis backbone that builds the
//! same network.

use std::path::PathBuf;

use super::Hub;
use crate::backbone::SourceOptions;
use crate::checkpoint::StateDict;
use crate::error::Result;
use crate::timm::TimmConfig;

/// A Hub checkpoint in ferrovis' terms.
#[derive(Debug)]
pub struct HubCheckpoint {
    /// The ferrovis architecture that builds the network (`convnext_tiny`, `dinov2_vits14`).
    pub arch: String,
    /// The square image size the network was trained at (what a transformer's positional
    /// embedding is built for).
    pub image_size: i64,
    /// Classes, label names and preprocessing in timm's terms (a transformers checkpoint's
    /// `preprocessor_config.json` translated); `architecture` is the source's own name.
    pub config: TimmConfig,
    /// The weights, under the ferrovis backbone's names.
    pub state_dict: StateDict,
    /// The weights file read.
    pub weights: PathBuf,
    /// What building the source's network takes beyond the architecture: how it resizes
    /// DINOv2's positional embedding, timm's BatchNorm settings and `tf_` padding
    /// (`build.apply(options)` before creating the backbone).
    pub build: SourceOptions,
}

/// Whether `spec` names a checkpoint [`read`] takes: timm's or transformers' DINOv2.
pub fn is_hub_checkpoint(spec: &str) -> bool {
    crate::transformers::is_transformers(spec) || crate::timm::is_timm(spec)
}

/// The weights an `arch` network starts from: `weights` when given, else the Hub repository a
/// DINOv2 architecture takes its pre-trained features from (`hf-hub:facebook/dinov2-small`;
/// other architectures: none, `""`); and the Hub checkpoint they name, read, when they name
/// one (its own architecture, preprocessing and build options).
pub fn weights_for(arch: &str, weights: &str) -> Result<(String, Option<HubCheckpoint>)> {
    let weights = match crate::transformers::default_repo(arch) {
        Some(repo) if weights.is_empty() => format!("hf-hub:{repo}"),
        _ => weights.to_string(),
    };
    let ckpt = if is_hub_checkpoint(&weights) {
        Some(read(&weights)?)
    } else {
        None
    };
    Ok((weights, ckpt))
}

/// Reads the checkpoint `spec` names (timm's or transformers'; see [`is_hub_checkpoint`]).
pub fn read(spec: &str) -> Result<HubCheckpoint> {
    read_in(&Hub::from_env(), spec)
}

/// [`read`] with the caches and network rules of `hub`.
pub fn read_in(hub: &Hub, spec: &str) -> Result<HubCheckpoint> {
    if crate::transformers::is_transformers(spec) {
        crate::transformers::read_in(hub, spec)
    } else {
        crate::timm::read_in(hub, spec)
    }
}
