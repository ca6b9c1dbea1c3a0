//! The full checkpoint a run resumes from (`<run>/checkpoint.safetensors`: model, optimiser,
//! EMA and the engine's bookkeeping) and the per-epoch `results.csv`.

use std::collections::HashMap;

use tch::nn::VarStore;

use super::end_of_epoch::sorted_vars;
use crate::atomic_file::write_atomic;
use crate::checkpoint::{self, LoadOptions, StateDict};
use crate::error::{Error, Result};
use crate::optim::{ModelEma, Optimizer};
use crate::run::RunDir;

/// Appends one row to `results.csv` (writing the header first in a new file), atomically.
pub(super) fn append_results(
    dir: &RunDir,
    epoch: usize,
    train_loss: f64,
    metrics: &[(String, f64)],
    lr: f64,
    seconds: f64,
) -> Result<()> {
    let path = dir.results();
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    let names: Vec<String> = std::iter::once("epoch".to_string())
        .chain(std::iter::once("train_loss".to_string()))
        .chain(metrics.iter().map(|(n, _)| n.clone()))
        .chain(["lr".to_string(), "seconds".to_string()])
        .collect();
    let header = names.join(",");
    match text.lines().next() {
        None => text = header + "\n",
        // A resumed run whose task now reports other metrics would misalign the columns.
        Some(existing) if existing != header => {
            return Err(Error::Invalid(format!(
                "{}: its columns are {existing:?}, this run's are {header:?}; resume with the \
                 settings the run started with",
                path.display()
            )))
        }
        Some(_) => {}
    }
    let mut row = vec![epoch.to_string(), format!("{train_loss:.6}")];
    row.extend(metrics.iter().map(|(_, v)| format!("{v:.6}")));
    row.push(format!("{lr:.6e}"));
    row.push(format!("{seconds:.4}"));
    text += &(row.join(",") + "\n");
    write_atomic(&path, text.as_bytes())
}

/// The bookkeeping stored with a checkpoint.
pub(super) struct ResumeState {
    pub(super) epoch: usize,
    pub(super) best: Option<(f64, usize)>,
    pub(super) bad_epochs: usize,
}

impl ResumeState {
    pub(super) fn save(
        &self,
        dir: &RunDir,
        vs: &VarStore,
        opt: &Optimizer,
        ema: Option<&ModelEma>,
        config: Option<&str>,
    ) -> Result<()> {
        let mut all = StateDict::new();
        for (n, t) in sorted_vars(vs) {
            all.insert(format!("model.{n}"), t);
        }
        for (n, t) in opt.state_dict().iter() {
            all.insert(format!("optim.{n}"), t.shallow_clone());
        }
        let mut meta = HashMap::from([
            ("format".to_string(), "ferrovis-checkpoint-1".to_string()),
            ("epoch".to_string(), self.epoch.to_string()),
            ("bad_epochs".to_string(), self.bad_epochs.to_string()),
        ]);
        if let Some(text) = config {
            meta.insert("config".into(), text.to_string());
        }
        if let Some((v, e)) = self.best {
            // Exact bits, so a resumed run compares against the very same value.
            meta.insert("best".into(), format!("{}", v.to_bits()));
            meta.insert("best_epoch".into(), e.to_string());
        }
        if let Some(e) = ema {
            for (n, t) in &e.shadow {
                all.insert(format!("ema.{n}"), t.shallow_clone());
            }
            meta.insert("ema_updates".into(), e.updates.to_string());
        }
        checkpoint::save_safetensors_with_metadata(dir.checkpoint(), all.iter(), Some(meta))
    }

    pub(super) fn load(
        dir: &RunDir,
        vs: &VarStore,
        opt: &mut Optimizer,
        ema: Option<&mut ModelEma>,
    ) -> Result<Self> {
        let path = dir.checkpoint();
        let meta = checkpoint::read_safetensors_metadata(&path)?;
        let field = |k: &str| -> Result<u64> {
            meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| {
                Error::checkpoint(&path, format!("checkpoint metadata has no valid {k:?}"))
            })
        };
        if meta.get("format").map(String::as_str) != Some("ferrovis-checkpoint-1") {
            return Err(Error::checkpoint(
                &path,
                "not a ferrovis training checkpoint",
            ));
        }
        let all = checkpoint::read(&path)?;
        let part = |prefix: &str| -> StateDict {
            all.iter()
                .filter_map(|(n, t)| {
                    n.strip_prefix(prefix)
                        .map(|n| (n.to_string(), t.shallow_clone()))
                })
                .collect()
        };
        checkpoint::load_into(vs, &part("model."), &LoadOptions::default().strict(true))?;
        opt.load_state_dict(&part("optim."))?;
        if let Some(e) = ema {
            let saved = part("ema.");
            for (n, t) in &mut e.shadow {
                let s = saved
                    .get(n)
                    .ok_or_else(|| Error::checkpoint(&path, format!("no EMA weight for {n}")))?;
                tch::no_grad(|| t.copy_(s));
            }
            e.updates = field("ema_updates")?;
        }
        let best = match (meta.get("best"), meta.get("best_epoch")) {
            (Some(_), Some(_)) => Some((
                f64::from_bits(field("best")?),
                field("best_epoch")? as usize,
            )),
            _ => None,
        };
        Ok(ResumeState {
            epoch: field("epoch")? as usize,
            best,
            bad_epochs: field("bad_epochs")? as usize,
        })
    }
}
