//! What trains: freezing and unfreezing variables by name pattern, by backbone stage, or by
//! Ultralytics-style layer index.
//!
//! The training modes users choose map onto these: *feature extraction* =
//! `freeze_before_stage(.., "head")`; *fine-tuning* = nothing frozen, with a lower
//! `backbone_lr_scale` in [`crate::optim::GroupConfig`]; *partial* = [`train_last_stages`];
//! *gradual* (fastai's `fine_tune`) = feature extraction for k epochs, then
//! `set_trainable(.., true, ..)` from `TrainTask::on_epoch_start(k)`, with groups built with
//! `include_frozen` and `lr_spread: Some(0.01)` so the stem trains at base/100 and the head at base.
//!
//! Freezing clears `requires_grad`. [`crate::nn::BatchNorm2d`] reads that flag: a BatchNorm whose
//! weight is frozen normalises with its running statistics even in training mode and does not
//! update them, so a frozen backbone's statistics stay bit-identical while the head trains (the
//! usual transfer-learning behaviour). To let frozen BatchNorm statistics adapt, keep the norm
//! layers trainable with [`FreezeOptions::keep_norm_trainable`].

use tch::nn::VarStore;

use crate::backbone::Stage;
use crate::error::{Error, Result};

/// Options shared by the freezing functions.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreezeOptions {
    /// Leave BatchNorm weights and biases trainable (their statistics then keep adapting).
    pub keep_norm_trainable: bool,
}

/// Matches `name` against a glob where `*` matches any run of characters (dots included), e.g.
/// `backbone.layer1.*` or `*.bn1.*`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first)
        || !name[first.len()..].ends_with(last)
        || name.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// True for parameters of a normalisation layer: their module also owns a `running_mean`.
fn is_norm_param(vars: &std::collections::HashMap<String, tch::Tensor>, name: &str) -> bool {
    let Some(module) = name.rsplit_once('.').map(|(m, _)| m) else {
        return false;
    };
    vars.contains_key(&format!("{module}.running_mean"))
}

/// Sets `requires_grad` of every floating-point variable for which `select` is true to
/// `trainable`; returns how many changed. Buffers (running statistics, counters) never train.
pub fn set_trainable(
    vs: &VarStore,
    trainable: bool,
    opts: FreezeOptions,
    select: impl Fn(&str) -> bool,
) -> usize {
    let vars = vs.variables();
    let parameters = parameter_ptrs(vs);
    let mut changed = 0;
    for (name, t) in &vars {
        // Only variables created trainable can train; buffers stay as they are.
        if !parameters.contains(&(t.data_ptr() as usize)) || !select(name) {
            continue;
        }
        if !trainable && opts.keep_norm_trainable && is_norm_param(&vars, name) {
            continue;
        }
        if t.requires_grad() != trainable {
            let mut t = t.shallow_clone();
            let _ = t.requires_grad_(trainable);
            changed += 1;
        }
    }
    changed
}

/// Data pointers of the variables created as parameters (trainable), frozen or not: what tells a
/// frozen parameter apart from a buffer, since neither requires grad.
pub fn parameter_ptrs(vs: &VarStore) -> std::collections::HashSet<usize> {
    vs.trainable_variables()
        .iter()
        .map(|t| t.data_ptr() as usize)
        .collect()
}

/// The parameters of `vs` that train now (`requires_grad`; buffers and frozen ones left out),
/// `(name, tensor)` sorted by name: what an optimiser's groups are made of.
pub fn trainable_parameters(vs: &VarStore) -> Vec<(String, tch::Tensor)> {
    let parameters = parameter_ptrs(vs);
    let mut vars: Vec<(String, tch::Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| parameters.contains(&(t.data_ptr() as usize)) && t.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Numbers of trainable (`requires_grad`) and of all parameters of `vs` (buffers excluded).
pub fn parameter_counts(vs: &VarStore) -> (i64, i64) {
    let params = parameter_ptrs(vs);
    let (mut trainable, mut total) = (0, 0);
    for t in vs.variables().values() {
        if params.contains(&(t.data_ptr() as usize)) {
            total += t.numel() as i64;
            if t.requires_grad() {
                trainable += t.numel() as i64;
            }
        }
    }
    (trainable, total)
}

/// Freezes every variable matching one of the glob `patterns`; a pattern matching nothing is an
/// error naming it (a typo must not silently train everything).
pub fn freeze_patterns(vs: &VarStore, patterns: &[&str], opts: FreezeOptions) -> Result<usize> {
    let names: Vec<String> = vs.variables().into_keys().collect();
    for p in patterns {
        if !names.iter().any(|n| glob_match(p, n)) {
            return Err(Error::Invalid(format!(
                "freeze pattern {p:?} matches no variable"
            )));
        }
    }
    Ok(set_trainable(vs, false, opts, |n| {
        patterns.iter().any(|p| glob_match(p, n))
    }))
}

fn in_stage(stage: &Stage, name: &str) -> bool {
    stage
        .prefixes
        .iter()
        .any(|p| name == p || name.starts_with(&format!("{p}.")))
}

/// Freezes every stage before the one called `stage` ("everything before `layer3`").
pub fn freeze_before_stage(
    vs: &VarStore,
    stages: &[Stage],
    stage: &str,
    opts: FreezeOptions,
) -> Result<usize> {
    let idx = stages.iter().position(|s| s.name == stage).ok_or_else(|| {
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        Error::Invalid(format!(
            "no stage {stage:?}; stages are {}",
            names.join(", ")
        ))
    })?;
    let frozen = &stages[..idx];
    Ok(set_trainable(vs, false, opts, |n| {
        frozen.iter().any(|s| in_stage(s, n))
    }))
}

/// Trains only the last `n` stages (the head is the last stage), freezing the rest.
pub fn train_last_stages(vs: &VarStore, stages: &[Stage], n: usize, opts: FreezeOptions) -> usize {
    let keep = stages.len().saturating_sub(n);
    let frozen = &stages[..keep];
    set_trainable(vs, true, opts, |_| true);
    set_trainable(vs, false, opts, |name| {
        frozen.iter().any(|s| in_stage(s, name))
    })
}

/// Ultralytics' `freeze=N`: freezes `model.0` … `model.{N−1}`.
pub fn freeze_first_layers(vs: &VarStore, n: usize, opts: FreezeOptions) -> usize {
    set_trainable(vs, false, opts, |name| {
        name.strip_prefix("model.")
            .and_then(|r| r.split('.').next())
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "backbone.layer1.*",
            "backbone.layer1.0.conv1.weight"
        ));
        assert!(!glob_match("backbone.layer1.*", "backbone.layer10.weight"));
        assert!(glob_match("*.bn1.*", "layer1.0.bn1.weight"));
        assert!(glob_match("fc.weight", "fc.weight"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("a*b*c", "aXbYc"));
    }
}
