//! Copying a [`StateDict`] into a model's `VarStore`, with a report like PyTorch's
//! `load_state_dict(strict=False)`.

use std::fmt;

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
            .map_err(|e| Error::Load(format!("skip pattern {pattern:?}: {e}")))?;
        self.skip.push(re);
        Ok(self)
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
            .map_err(|e| Error::Load(format!("rename pattern {pattern:?}: {e}")))?;
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
}

impl LoadReport {
    /// True when every variable was loaded and every tensor was used or deliberately skipped.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.loaded.len() + self.missing.len() + self.mismatched.len();
        write!(f, "loaded {} of {} tensors", self.loaded.len(), total)?;
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
/// variable's. In strict mode any missing, unexpected or shape-mismatched name is an error and
/// nothing is copied.
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
            None => report.unexpected.push(name.to_string()),
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
    let mismatched: std::collections::HashSet<&str> =
        report.mismatched.iter().map(|m| m.name.as_str()).collect();
    let mut missing: Vec<String> = vars
        .keys()
        .filter(|k| !used.contains(*k) && !mismatched.contains(k.as_str()))
        .cloned()
        .collect();
    missing.sort();
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
