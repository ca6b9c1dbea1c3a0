//! What a fast-style run folder records besides the engine's files: its [`FastConfig`] as
//! `<run>/style.json` (the style image, the VGG and the loss), so `val` scores the network with
//! the loss it was trained on and `train --resume` continues with the same settings.

use crate::fast::FastConfig;

impl ferrovis_core::run::RunMeta for FastConfig {
    const FILE: &'static str = "style.json";
    const TASK: &'static str = "style";
}
