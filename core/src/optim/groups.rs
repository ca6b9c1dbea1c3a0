//! Parameter groups: which trainable tensors share a learning-rate scale and a weight decay.

use tch::nn::VarStore;
use tch::Tensor;

use crate::backbone::Stage;

/// A set of parameters optimised with the same settings.
#[derive(Debug)]
pub struct ParamGroup {
    /// A label for logs and `results.csv` (`head`, `layer3/decay`, …).
    pub name: String,
    /// `(state_dict name, tensor)`, sorted by name.
    pub params: Vec<(String, Tensor)>,
    /// Multiplies the scheduled learning rate.
    pub lr_scale: f64,
    /// Weight decay of this group.
    pub weight_decay: f64,
}

/// How to split a model's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Weight decay for weights of convolutions and linear layers.
    pub weight_decay: f64,
    /// No decay on biases and normalisation weights (every parameter with ≤ 1 dimension).
    pub no_decay_bias_norm: bool,
    /// Learning-rate scale of every stage except the head (e.g. 0.1 for "backbone at a tenth").
    pub backbone_lr_scale: f64,
    /// Layer-wise decay: stage i of S gets `layer_decay^(S−1−i)` (the head 1); `None` for off.
    pub layer_decay: Option<f64>,
    /// Discriminative rates (fastai's `slice(base/100, base)`): the stem gets this factor, the head
    /// 1, the stages between are spaced geometrically; `None` for off.
    pub lr_spread: Option<f64>,
    /// Also group frozen variables (they get no gradient, so no update, until unfrozen): what
    /// gradual unfreezing needs, since the groups are fixed when the optimiser is built.
    pub include_frozen: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            weight_decay: 0.0,
            no_decay_bias_norm: true,
            backbone_lr_scale: 1.0,
            layer_decay: None,
            lr_spread: None,
            include_frozen: false,
        }
    }
}

/// Splits the trainable (`requires_grad`, or all parameters with `include_frozen`) variables of
/// `vs` into groups by stage (`stages` from stem to head) and by decay/no-decay. Variables in no
/// stage join the head's scale. Empty groups are left out.
pub fn param_groups(vs: &VarStore, stages: &[Stage], cfg: &GroupConfig) -> Vec<ParamGroup> {
    let parameters = crate::freeze::parameter_ptrs(vs);
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| {
            t.requires_grad()
                || (cfg.include_frozen && parameters.contains(&(t.data_ptr() as usize)))
        })
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let n = stages.len();
    let stage_of = |name: &str| {
        stages
            .iter()
            .position(|s| {
                s.prefixes
                    .iter()
                    .any(|p| name == p || name.starts_with(&format!("{p}.")))
            })
            .unwrap_or(n.saturating_sub(1))
    };
    let scale = |i: usize| {
        let head = i + 1 == n;
        let base = if head { 1.0 } else { cfg.backbone_lr_scale };
        let spread = cfg.lr_spread.map_or(1.0, |lo| {
            if n > 1 {
                lo.powf((n - 1 - i) as f64 / (n - 1) as f64)
            } else {
                1.0
            }
        });
        base * cfg.layer_decay.map_or(1.0, |d| d.powi((n - 1 - i) as i32)) * spread
    };
    let mut groups: Vec<ParamGroup> = Vec::new();
    for (name, t) in vars {
        let i = stage_of(&name);
        let decay = !(cfg.no_decay_bias_norm && t.dim() <= 1);
        let label = format!(
            "{}/{}",
            stages.get(i).map_or("all", |s| s.name.as_str()),
            if decay { "decay" } else { "no_decay" }
        );
        match groups.iter_mut().find(|g| g.name == label) {
            Some(g) => g.params.push((name, t)),
            None => groups.push(ParamGroup {
                name: label,
                params: vec![(name, t)],
                lr_scale: scale(i),
                weight_decay: if decay { cfg.weight_decay } else { 0.0 },
            }),
        }
    }
    groups
}
