//! Checkpoints from the Hugging Face Hub that carry their own configuration (`hf-hub:ORG/NAME`
//! or a folder with the same files): timm's ([`crate::timm`]) and transformers' DINOv2
//! ([`crate::transformers`]), each read into the names of the ferrovis backbone that builds the
//! same network.

use std::path::PathBuf;

use super::Hub;
use crate::backbone::{BackboneOptions, PosEmbedResize};
use crate::checkpoint::StateDict;
use crate::error::Result;
use crate::nn::NormLayer;
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
    /// How the source resizes DINOv2's positional embedding to another size (`None` for other
    /// families): build with it for the source's tokens.
    pub pos_embed_resize: Option<PosEmbedResize>,
    /// The source's BatchNorm settings where they differ from the ferrovis architecture's
    /// (timm's EfficientNets and MobileNetV3s).
    pub norm: Option<NormLayer>,
    /// TensorFlow's SAME padding (timm's `tf_` ports).
    pub tf_same_padding: bool,
}

impl HubCheckpoint {
    /// `base` with what building the source's network takes: its positional-embedding
    /// resizing, BatchNorm settings and padding.
    pub fn backbone_options(&self, base: BackboneOptions) -> BackboneOptions {
        BackboneOptions {
            pos_embed_resize: self.pos_embed_resize,
            norm: self.norm.unwrap_or(base.norm),
            tf_same_padding: self.tf_same_padding,
            ..base
        }
    }
}

/// Whether `spec` names a checkpoint [`read`] takes: timm's or transformers' DINOv2.
pub fn is_hub_checkpoint(spec: &str) -> bool {
    crate::transformers::is_transformers(spec) || crate::timm::is_timm(spec)
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
