//! The classifier: a core backbone with a new head sized to the data's classes, loaded from
//! pretrained weights (the old head dropped with a message), frozen as the mode says.

use std::path::Path;

use anyhow::{Context, Result};
use ferrovis_core::backbone::{self, Backbone, BackboneOptions};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::freeze::{self, FreezeOptions};
use ferrovis_core::optim::GroupConfig;
use tch::nn::VarStore;
use tch::Device;

use crate::config::{Mode, TrainSection};

/// A backbone and the variables it lives in.
pub struct Classifier {
    /// The backbone's name.
    pub arch: String,
    /// The variables, named as PyTorch's state_dict.
    pub vs: VarStore,
    /// The network.
    pub model: Box<dyn Backbone>,
}

impl Classifier {
    /// Builds `arch` with a `num_classes` head on `device`.
    pub fn new(arch: &str, num_classes: usize, dropout: f64, device: Device) -> Result<Self> {
        let vs = VarStore::new(device);
        let opts = BackboneOptions {
            num_classes: num_classes as i64,
            dropout: Some(dropout),
            ..Default::default()
        };
        let model = backbone::create(arch, &vs.root(), &opts)
            .with_context(|| format!("building {arch} with {num_classes} classes"))?;
        Ok(Self {
            arch: arch.to_string(),
            vs,
            model,
        })
    }

    /// Loads pretrained weights, skipping the classifier when its size differs; returns a one-line
    /// summary of what loaded.
    pub fn load_pretrained(&mut self, path: &Path) -> Result<String> {
        let sd = checkpoint::read(path).with_context(|| format!("reading {}", path.display()))?;
        let head_pattern = self.model.head_pattern();
        let head = regex::Regex::new(&head_pattern)?;
        let vars = self.vs.variables();
        // Keep the checkpoint's head only when it fits (same class count): then nothing is dropped.
        let head_fits = sd.iter().all(|(name, t)| {
            !head.is_match(name) || vars.get(name).is_some_and(|v| v.size() == t.size())
        });
        let mut opts = LoadOptions::default();
        if !head_fits {
            opts = opts.skip(&head_pattern)?;
        }
        let report = checkpoint::load_into(&self.vs, &sd, &opts)
            .with_context(|| format!("loading {}", path.display()))?;
        let new_head: Vec<&String> = report.missing.iter().filter(|n| head.is_match(n)).collect();
        let other_missing = report.missing.len() - new_head.len();
        if other_missing > 0 || !report.mismatched.is_empty() {
            anyhow::bail!(
                "{} does not fit {}: {other_missing} backbone tensors missing, {} of another shape\n{report}",
                path.display(),
                self.arch,
                report.mismatched.len()
            );
        }
        let mut line = format!("{}: {} tensors loaded", path.display(), report.loaded.len());
        if !report.skipped.is_empty() {
            line.push_str(&format!(
                "; the old {}-tensor head was dropped and a new one sized to the data is trained",
                report.skipped.len()
            ));
        }
        Ok(line)
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
            Mode::FeatureExtract => {
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

    /// Number of trainable (`requires_grad`) and of all parameters (buffers excluded).
    pub fn parameter_counts(&self) -> (i64, i64) {
        freeze::parameter_counts(&self.vs)
    }
}
