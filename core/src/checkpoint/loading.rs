//! Copying a [`StateDict`] into a model's `VarStore`, with a report like PyTorch's
//! `load_state_dict(strict=False)`.
//!
//! The transfer-learning load is one call: strict, except for the layers a new task replaces
//! (a classifier sized to other classes, a detector's class branch, a decoder absent from an
//! ImageNet checkpoint), which [`LoadOptions::reinit`] names. Those keep their fresh
//! initialisation and the report says so; anything else that does not fit is an error naming it.
//!
//! ```no_run
//! # fn main() -> ferrovis_core::Result<()> {
//! use ferrovis_core::backbone::{self, BackboneOptions};
//! use ferrovis_core::checkpoint::{self, LoadOptions};
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let model = backbone::create("resnet18", &vs.root(), &BackboneOptions::classes(2))?;
//! let opts = LoadOptions::default().strict(true).reinit(&model.head_pattern())?;
//! let report = checkpoint::load_file(&vs, "resnet18-f37072fd.pth", &opts)?;
//! println!("{}", report.summary()); // "120 of 122 tensors loaded; 2 start fresh (fc.bias, fc.weight)"
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::Path;

use regex::Regex;
use tch::nn::VarStore;

use super::StateDict;
use crate::error::{Error, Result};

/// A rule that rewrites checkpoint names before they are matched to model variables.
#[derive(Debug, Clone)]
enum Rename {
    Prefix { from: String, to: String },
    Regex { re: Regex, replacement: String },
}

/// How to match checkpoint tensors to model variables.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    strict: bool,
    skip: Vec<Regex>,
    reinit: Vec<Regex>,
    renames: Vec<Rename>,
}

impl LoadOptions {
    /// Fail unless every variable is loaded and every (non-skipped) tensor is used, with equal shapes.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Ignore checkpoint tensors whose (renamed) name matches `pattern` (a regex), e.g. `"^fc\\."`
    /// to drop a classifier whose class count changed.
    pub fn skip(mut self, pattern: &str) -> Result<Self> {
        let re = Regex::new(pattern)
            .map_err(|e| Error::Invalid(format!("skip pattern {pattern:?}: {e}")))?;
        self.skip.push(re);
        Ok(self)
    }

    /// Model variables whose name matches `pattern` (a regex) may be absent from the checkpoint
    /// or of another shape there: they keep their fresh initialisation and are listed in
    /// [`LoadReport::reinitialized`] instead of failing a strict load. A checkpoint tensor that
    /// does fit is still loaded (a head with the same class count is kept).
    pub fn reinit(mut self, pattern: &str) -> Result<Self> {
        let re = Regex::new(pattern)
            .map_err(|e| Error::Invalid(format!("reinit pattern {pattern:?}: {e}")))?;
        self.reinit.push(re);
        Ok(self)
    }

    /// True when the model variable `name` may start fresh (see [`LoadOptions::reinit`]).
    pub fn is_reinit(&self, name: &str) -> bool {
        self.reinit.iter().any(|re| re.is_match(name))
    }

    /// Replace a leading `from` with `to` in checkpoint names (`"backbone."` → `""`).
    pub fn rename_prefix(mut self, from: &str, to: &str) -> Self {
        self.renames.push(Rename::Prefix {
            from: from.into(),
            to: to.into(),
        });
        self
    }

    /// Rewrite checkpoint names with a regex and a replacement (`$1` groups allowed).
    pub fn rename_regex(mut self, pattern: &str, replacement: &str) -> Result<Self> {
        let re = Regex::new(pattern)
            .map_err(|e| Error::Invalid(format!("rename pattern {pattern:?}: {e}")))?;
        self.renames.push(Rename::Regex {
            re,
            replacement: replacement.into(),
        });
        Ok(self)
    }

    /// The name a checkpoint tensor is matched under, after every rename rule in order.
    pub fn map_name(&self, name: &str) -> String {
        let mut n = name.to_string();
        for r in &self.renames {
            n = match r {
                Rename::Prefix { from, to } => match n.strip_prefix(from.as_str()) {
                    Some(rest) => format!("{to}{rest}"),
                    None => n,
                },
                Rename::Regex { re, replacement } => re.replace_all(&n, replacement).into_owned(),
            };
        }
        n
    }

    /// True when a (renamed) name matches one of the skip patterns.
    pub fn is_skipped(&self, name: &str) -> bool {
        self.skip.iter().any(|re| re.is_match(name))
    }
}

/// A tensor whose shape differs from the variable of the same name.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The variable name.
    pub name: String,
    /// The model's shape.
    pub expected: Vec<i64>,
    /// The checkpoint's shape.
    pub found: Vec<i64>,
}

/// What [`load_into`] did, name by name.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Variables that received a checkpoint tensor.
    pub loaded: Vec<String>,
    /// Variables the checkpoint had nothing for (they keep their initialisation).
    pub missing: Vec<String>,
    /// Checkpoint tensors no variable wanted.
    pub unexpected: Vec<String>,
    /// Same name, different shape: not loaded.
    pub mismatched: Vec<Mismatch>,
    /// Checkpoint tensors dropped by a skip pattern.
    pub skipped: Vec<String>,
    /// Variables matched by a [`LoadOptions::reinit`] pattern that the checkpoint lacked or held
    /// in another shape: they keep their fresh initialisation.
    pub reinitialized: Vec<String>,
}

impl LoadReport {
    /// True when every variable was loaded or deliberately re-initialised, and every tensor was
    /// used or deliberately skipped.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// The model's variable count as the report saw it.
    pub fn total(&self) -> usize {
        self.loaded.len() + self.missing.len() + self.mismatched.len() + self.reinitialized.len()
    }

    /// One line: "60 of 62 tensors loaded; 2 start fresh (fc.bias, fc.weight)", followed by
    /// whatever else happened (skipped, missing, unexpected, of another shape).
    pub fn summary(&self) -> String {
        let names = |v: &[String]| -> String {
            let shown: Vec<&str> = v.iter().take(2).map(String::as_str).collect();
            let more = if v.len() > 2 { ", …" } else { "" };
            format!("{}{more}", shown.join(", "))
        };
        let mut line = format!("{} of {} tensors loaded", self.loaded.len(), self.total());
        if !self.reinitialized.is_empty() {
            line += &format!(
                "; {} start fresh ({})",
                self.reinitialized.len(),
                names(&self.reinitialized)
            );
        }
        if !self.skipped.is_empty() {
            line += &format!("; {} checkpoint tensors skipped", self.skipped.len());
        }
        if !self.missing.is_empty() {
            line += &format!(
                "; {} missing ({})",
                self.missing.len(),
                names(&self.missing)
            );
        }
        if !self.mismatched.is_empty() {
            let m: Vec<String> = self.mismatched.iter().map(|m| m.name.clone()).collect();
            line += &format!("; {} of another shape ({})", m.len(), names(&m));
        }
        if !self.unexpected.is_empty() {
            line += &format!(
                "; {} unexpected ({})",
                self.unexpected.len(),
                names(&self.unexpected)
            );
        }
        line
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loaded {} of {} tensors",
            self.loaded.len(),
            self.total()
        )?;
        let list = |f: &mut fmt::Formatter<'_>, what: &str, names: &[String]| -> fmt::Result {
            if names.is_empty() {
                return Ok(());
            }
            let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
            let more = if names.len() > 8 {
                format!(", … {} more", names.len() - 8)
            } else {
                String::new()
            };
            write!(
                f,
                "\n  {what} ({}): {}{more}",
                names.len(),
                shown.join(", ")
            )
        };
        list(f, "start fresh", &self.reinitialized)?;
        list(f, "skipped", &self.skipped)?;
        list(f, "missing", &self.missing)?;
        list(f, "unexpected", &self.unexpected)?;
        for m in &self.mismatched {
            write!(
                f,
                "\n  shape mismatch: {} model {:?} checkpoint {:?}",
                m.name, m.expected, m.found
            )?;
        }
        Ok(())
    }
}

/// Copies matching tensors from `sd` into the variables of `vs`, converting dtype and device to the
/// variable's. In strict mode any missing, unexpected or shape-mismatched name (other than those
/// [`LoadOptions::reinit`] allows) is an error and nothing is copied.
pub fn load_into(vs: &VarStore, sd: &StateDict, opts: &LoadOptions) -> Result<LoadReport> {
    let vars = vs.variables();
    let mut report = LoadReport::default();
    let mut plan = Vec::new();
    let mut used = std::collections::HashSet::new();
    for (name, t) in sd.iter() {
        let mapped = opts.map_name(name);
        if opts.is_skipped(&mapped) {
            report.skipped.push(name.to_string());
            continue;
        }
        match vars.get(&mapped) {
            // A BatchNorm's step counter where the model has a frozen BatchNorm (no counter):
            // no weight is lost, and torchvision's FrozenBatchNorm2d drops it the same way.
            None if mapped.ends_with(".num_batches_tracked") => {
                report.skipped.push(name.to_string())
            }
            None => report.unexpected.push(name.to_string()),
            Some(var) if var.size() != t.size() && opts.is_reinit(&mapped) => {
                report.reinitialized.push(mapped.clone())
            }
            Some(var) if var.size() != t.size() => report.mismatched.push(Mismatch {
                name: mapped.clone(),
                expected: var.size(),
                found: t.size(),
            }),
            Some(var) => {
                used.insert(mapped.clone());
                plan.push((mapped, var, t));
            }
        }
    }
    let seen: std::collections::HashSet<String> = report
        .mismatched
        .iter()
        .map(|m| m.name.clone())
        .chain(report.reinitialized.iter().cloned())
        .collect();
    let mut missing: Vec<String> = vars
        .keys()
        .filter(|k| !used.contains(*k) && !seen.contains(k.as_str()))
        .cloned()
        .collect();
    missing.sort();
    let (fresh, mut missing): (Vec<String>, Vec<String>) =
        missing.into_iter().partition(|k| opts.is_reinit(k));
    // A BatchNorm step counter the checkpoint lacks (files saved before PyTorch 0.4.1, such as
    // torchvision's DenseNet and Inception v3 weights) stays 0, as PyTorch's BatchNorm fills it.
    missing.retain(|k| !k.ends_with(".num_batches_tracked"));
    report.reinitialized.extend(fresh);
    report.reinitialized.sort();
    report.missing = missing;
    if opts.strict && !report.is_complete() {
        return Err(Error::Load(format!("strict load failed: {report}")));
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var, t) in &plan {
            let src = t.f_to_kind(var.kind())?.f_to_device(var.device())?;
            let mut var = var.shallow_clone();
            var.f_copy_(&src)?;
            report.loaded.push(name.clone());
        }
        Ok(())
    })?;
    report.loaded.sort();
    Ok(report)
}

/// Reads the checkpoint at `path` (any format [`super::read`] knows) and loads it with `opts`;
/// every error names the file.
pub fn load_file(vs: &VarStore, path: impl AsRef<Path>, opts: &LoadOptions) -> Result<LoadReport> {
    let path = path.as_ref();
    let sd = super::read(path)?;
    load_into(vs, &sd, opts).map_err(|e| match e {
        Error::Load(msg) => Error::Load(format!("{}: {msg}", path.display())),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// A two-layer model: `body.weight` [3, 2] and `fc.weight`/`fc.bias` for `classes`.
    fn model(classes: i64) -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = root.sub("body").zeros("weight", &[3, 2]);
        let _ = root.sub("fc").zeros("weight", &[classes, 3]);
        let _ = root.sub("fc").zeros("bias", &[classes]);
        vs
    }

    fn checkpoint(classes: i64) -> StateDict {
        let mut sd = StateDict::default();
        sd.insert(
            "body.weight",
            Tensor::ones([3, 2], (Kind::Float, Device::Cpu)),
        );
        sd.insert(
            "fc.weight",
            Tensor::ones([classes, 3], (Kind::Float, Device::Cpu)),
        );
        sd.insert(
            "fc.bias",
            Tensor::ones([classes], (Kind::Float, Device::Cpu)),
        );
        sd
    }

    #[test]
    fn a_head_of_another_size_starts_fresh_and_the_rest_loads_strictly() {
        let vs = model(2);
        let opts = LoadOptions::default()
            .strict(true)
            .reinit("^fc\\.")
            .unwrap();
        let report = load_into(&vs, &checkpoint(1000), &opts).unwrap();
        assert_eq!(report.loaded, ["body.weight"]);
        assert_eq!(report.reinitialized, ["fc.bias", "fc.weight"]);
        assert!(report.is_complete());
        assert_eq!(
            report.summary(),
            "1 of 3 tensors loaded; 2 start fresh (fc.bias, fc.weight)"
        );
        let vars = vs.variables();
        assert_eq!(vars["body.weight"].sum(Kind::Float).double_value(&[]), 6.0);
        assert_eq!(vars["fc.weight"].sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn a_head_that_fits_is_kept() {
        let vs = model(2);
        let opts = LoadOptions::default()
            .strict(true)
            .reinit("^fc\\.")
            .unwrap();
        let report = load_into(&vs, &checkpoint(2), &opts).unwrap();
        assert_eq!(report.loaded.len(), 3);
        assert!(report.reinitialized.is_empty());
        assert_eq!(report.summary(), "3 of 3 tensors loaded");
    }

    #[test]
    fn missing_variables_under_a_reinit_pattern_start_fresh() {
        let vs = model(2);
        let mut sd = StateDict::default();
        sd.insert(
            "body.weight",
            Tensor::ones([3, 2], (Kind::Float, Device::Cpu)),
        );
        let opts = LoadOptions::default()
            .strict(true)
            .reinit("^fc\\.")
            .unwrap();
        let report = load_into(&vs, &sd, &opts).unwrap();
        assert_eq!(report.reinitialized, ["fc.bias", "fc.weight"]);
    }

    #[test]
    fn anything_else_that_does_not_fit_fails_a_strict_load_naming_it() {
        let vs = model(2);
        let mut sd = checkpoint(2);
        sd.insert(
            "body.weight",
            Tensor::ones([4, 2], (Kind::Float, Device::Cpu)),
        );
        let opts = LoadOptions::default()
            .strict(true)
            .reinit("^fc\\.")
            .unwrap();
        let err = load_into(&vs, &sd, &opts).unwrap_err().to_string();
        assert!(err.contains("body.weight"), "{err}");
        assert!(err.contains("[3, 2]") && err.contains("[4, 2]"), "{err}");
        // Nothing was copied.
        let vars = vs.variables();
        assert_eq!(vars["fc.weight"].sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn a_bad_pattern_is_an_invalid_setting() {
        let err = LoadOptions::default().reinit("(").unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains("reinit pattern \"(\""), "{err}");
    }
}
