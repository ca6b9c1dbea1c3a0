//! Run folders: what `train` writes and `val`, `predict`, `export` and `train --resume` read back.
//!
//! ```text
//! <run>/config.toml                the resolved configuration
//! <run>/<task>.json                the task's metadata (a [`RunMeta`]): what rebuilds the model
//! <run>/results.csv, results.png   one row per epoch, and its chart
//! <run>/weights/best.safetensors   the weights at the best monitored metric (PyTorch names)
//! <run>/weights/last.safetensors   the weights after the last epoch
//! <run>/checkpoint.safetensors     model + optimiser + EMA + bookkeeping, for resume
//! ```
//!
//! A command that takes weights accepts a weights file or a run folder; [`resolve_weights`] turns
//! either into the file to load and, when the file lies in a run folder, that folder, so the
//! task's metadata (class names, preprocessing) comes with it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};

/// A task's record of its run: everything `val` and `predict` need to rebuild the model, written
/// as JSON to `<run>/<FILE>` when training starts.
pub trait RunMeta: Serialize + DeserializeOwned {
    /// The file name inside the run folder, e.g. `classify.json`.
    const FILE: &'static str;
    /// The task's name, for messages ("not a classify run folder").
    const TASK: &'static str;
}

/// Paths inside a run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// The run folder at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RunDir(path.into())
    }
    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    /// `results.csv`.
    pub fn results(&self) -> PathBuf {
        self.0.join("results.csv")
    }
    /// `results.png`, the chart of `results.csv`.
    pub fn results_png(&self) -> PathBuf {
        self.0.join("results.png")
    }
    /// `weights/last.safetensors`.
    pub fn last(&self) -> PathBuf {
        self.0.join("weights").join("last.safetensors")
    }
    /// `weights/best.safetensors`.
    pub fn best(&self) -> PathBuf {
        self.0.join("weights").join("best.safetensors")
    }
    /// `checkpoint.safetensors`.
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint.safetensors")
    }
    /// `<M::FILE>`, the task's metadata.
    pub fn meta_path<M: RunMeta>(&self) -> PathBuf {
        self.0.join(M::FILE)
    }
    /// True when the folder holds `M`'s metadata file.
    pub fn has_meta<M: RunMeta>(&self) -> bool {
        self.meta_path::<M>().is_file()
    }

    /// Reads the task's metadata; the error names the file and says which folder was expected.
    pub fn read_meta<M: RunMeta>(&self) -> Result<M> {
        let path = self.meta_path::<M>();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Invalid(format!(
                    "{}: no {} here: not a {} run folder",
                    self.0.display(),
                    M::FILE,
                    M::TASK
                ))
            } else {
                Error::io(&path, e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// Writes the task's metadata atomically (creating the folder).
    pub fn write_meta<M: RunMeta>(&self, meta: &M) -> Result<()> {
        // One writer in a data-parallel run: rank 0 (see crate::distributed).
        if !crate::distributed::is_main_process() {
            return Ok(());
        }
        let path = self.meta_path::<M>();
        let text = serde_json::to_string_pretty(meta)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        std::fs::create_dir_all(&self.0).map_err(|e| Error::io(&self.0, e))?;
        write_atomic(&path, text.as_bytes())
    }
}

/// A model source resolved to the file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedWeights {
    /// The weights file.
    pub file: PathBuf,
    /// The run folder it belongs to (the folder given, or `<run>` of `<run>/weights/<file>`).
    pub run: Option<RunDir>,
}

impl ResolvedWeights {
    /// The run's metadata of type `M`, when the weights come from a run folder of that task.
    pub fn meta<M: RunMeta>(&self) -> Result<Option<M>> {
        match &self.run {
            Some(run) if run.has_meta::<M>() => run.read_meta().map(Some),
            _ => Ok(None),
        }
    }
}

/// Resolves `--weights PATH`: a run folder gives its `weights/best.safetensors` (or
/// `last.safetensors` when no best was written yet); a file is itself, with its run folder when it
/// lies in `<run>/weights/`; a weights name (`resnet50`, `resnet50:IMAGENET1K_V1`, `yolov8n.pt`,
/// `hf-hub:ORG/NAME`) that is no path here is its cached file, downloaded first when needed
/// ([`crate::hub`]). A path that does not exist is an error naming it.
pub fn resolve_weights(path: &Path) -> Result<ResolvedWeights> {
    if path.is_dir() {
        let run = RunDir::new(path);
        let file = [run.best(), run.last()]
            .into_iter()
            .find(|f| f.is_file())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: a folder with no weights/best.safetensors or weights/last.safetensors \
                     (not a finished run folder?)",
                    path.display()
                ))
            })?;
        return Ok(ResolvedWeights {
            file,
            run: Some(run),
        });
    }
    let named = crate::hub::local_or_named(path)?;
    if named != path {
        return Ok(ResolvedWeights {
            file: named,
            run: None,
        });
    }
    if !path.is_file() {
        return Err(Error::Invalid(format!(
            "{}: no such weights file or run folder",
            path.display()
        )));
    }
    let run = path
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "weights"))
        .and_then(Path::parent)
        .map(RunDir::new);
    Ok(ResolvedWeights {
        file: path.to_path_buf(),
        run,
    })
}

/// The configuration file of `train --resume RUN`: `config` when one is given, else the run's own
/// `config.toml`. The run must hold `checkpoint.safetensors` (the engine's resume point); each
/// missing file is named. With no `resume`, `config` as it is.
pub fn resume_config(config: Option<&Path>, resume: Option<&Path>) -> Result<Option<PathBuf>> {
    let Some(run) = resume else {
        return Ok(config.map(Path::to_path_buf));
    };
    let run = RunDir::new(run);
    if !run.path().is_dir() {
        return Err(Error::Invalid(format!(
            "--resume {}: no such run folder",
            run.path().display()
        )));
    }
    if !run.checkpoint().is_file() {
        return Err(Error::Invalid(format!(
            "--resume {}: no checkpoint.safetensors to resume from (the run stopped before its \
             first epoch ended)",
            run.path().display()
        )));
    }
    match config {
        Some(c) => Ok(Some(c.to_path_buf())),
        None if run.config().is_file() => Ok(Some(run.config())),
        None => Err(Error::Invalid(format!(
            "--resume {}: no config.toml to resume with (give --config)",
            run.path().display()
        ))),
    }
}

/// The folder a training writes to: the run being resumed, or a new one under `project` named
/// `name` (see [`new_run_dir`]).
pub fn training_dir(project: &Path, name: &str, resume: Option<&Path>) -> PathBuf {
    match resume {
        Some(run) => run.to_path_buf(),
        None => new_run_dir(project, name),
    }
}

/// A new run folder under `project` named `name`, or `name2`, `name3`, … when taken (as
/// Ultralytics).
///
/// In a data-parallel run ([`crate::distributed`]) rank 0 chooses and every rank gets its choice,
/// so the ranks never pick different folders.
pub fn new_run_dir(project: &Path, name: &str) -> PathBuf {
    let chosen = first_free_run_dir(project, name);
    match crate::distributed::current() {
        Some(g) => match g.broadcast_string(&chosen.to_string_lossy(), 0) {
            Ok(p) => PathBuf::from(p),
            Err(e) => {
                // The next collective fails the same way and stops training with this error.
                tracing::error!(error = %e, "could not agree on the run folder");
                chosen
            }
        },
        None => chosen,
    }
}

fn first_free_run_dir(project: &Path, name: &str) -> PathBuf {
    let first = project.join(name);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|i| project.join(format!("{name}{i}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Meta {
        classes: Vec<String>,
    }

    impl RunMeta for Meta {
        const FILE: &'static str = "toy.json";
        const TASK: &'static str = "toy";
    }

    #[test]
    fn metadata_round_trips_and_a_wrong_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("exp"));
        let meta = Meta {
            classes: vec!["ant".into(), "bee".into()],
        };
        run.write_meta(&meta).unwrap();
        assert_eq!(run.read_meta::<Meta>().unwrap(), meta);

        let other = RunDir::new(dir.path());
        let err = other.read_meta::<Meta>().unwrap_err().to_string();
        assert!(
            err.contains("no toy.json here: not a toy run folder"),
            "{err}"
        );

        std::fs::write(run.meta_path::<Meta>(), "{\"classes\": 3}").unwrap();
        let err = run.read_meta::<Meta>().unwrap_err().to_string();
        assert!(err.contains("toy.json: invalid type"), "{err}");
    }

    #[test]
    fn weights_resolve_from_a_folder_or_a_file_inside_one() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let err = resolve_weights(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no weights/best.safetensors"), "{err}");

        std::fs::create_dir_all(run.last().parent().unwrap()).unwrap();
        std::fs::write(run.last(), b"x").unwrap();
        let r = resolve_weights(dir.path()).unwrap();
        assert_eq!((r.file, r.run), (run.last(), Some(run.clone())));
        std::fs::write(run.best(), b"x").unwrap();
        assert_eq!(resolve_weights(dir.path()).unwrap().file, run.best());

        let r = resolve_weights(&run.last()).unwrap();
        assert_eq!(r.run, Some(run.clone()));
        let loose = dir.path().join("model.pth");
        std::fs::write(&loose, b"x").unwrap();
        assert_eq!(resolve_weights(&loose).unwrap().run, None);

        let err = resolve_weights(&dir.path().join("nope.pt"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nope.pt: no such weights file or run folder"),
            "{err}"
        );
    }

    #[test]
    fn resuming_needs_a_checkpoint_and_a_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(resume_config(None, None).unwrap(), None);
        let err = resume_config(None, Some(&dir.path().join("gone")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gone: no such run folder"), "{err}");
        let err = resume_config(None, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no checkpoint.safetensors"), "{err}");
        std::fs::write(run.checkpoint(), b"x").unwrap();
        let err = resume_config(None, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no config.toml"), "{err}");
        std::fs::write(run.config(), b"").unwrap();
        assert_eq!(
            resume_config(None, Some(dir.path())).unwrap(),
            Some(run.config())
        );
        let other = dir.path().join("other.toml");
        assert_eq!(
            resume_config(Some(&other), Some(dir.path())).unwrap(),
            Some(other)
        );
    }
}
