//! Crash-safe file writes: a reader (or a resumed run) sees either the old file or the new one,
//! never a half-written one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same folder, `fsync`s it and renames it
/// over the target, then syncs the folder so the rename itself survives a power cut.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    stage(path, bytes)?.commit()
}

/// A fully written and synced temporary file waiting to replace its target. Dropping it without
/// [`Staged::commit`] (what a crash amounts to) removes it and leaves the target untouched.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

/// Writes and syncs `bytes` next to `path`, without touching `path` yet.
pub fn stage(path: &Path, bytes: &[u8]) -> Result<Staged> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::checkpoint(path, "not a file path"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(Staged {
        tmp,
        target: path.to_path_buf(),
        committed: false,
    })
}

impl Staged {
    /// Renames the temporary file over the target and syncs the folder.
    pub fn commit(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.committed = true;
        if let Some(dir) = self.target.parent().and_then(|d| {
            File::open(if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            })
            .ok()
        }) {
            // Some file systems cannot sync a directory; the rename is still atomic there.
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_before_commit_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.safetensors");
        write_atomic(&p, b"old").unwrap();
        let staged = stage(&p, b"new, half-way through a checkpoint").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        drop(staged); // the process dies here
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left behind"
        );
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }
}
