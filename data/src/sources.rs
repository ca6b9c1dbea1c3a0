//! What `predict` reads, in every task: image files, folders (the images directly in them),
//! glob patterns (`photos/*.png`, `dir/**/*.jpg`, as Ultralytics' `source=` takes them) and list
//! files (`.txt`, one source a line, relative to the list's folder), expanded to files in a
//! stable order; and [`SkipLog`], the record of the files that could not be read, so one bad
//! file costs only itself.

use std::path::{Path, PathBuf};

use crate::decode::is_image_path;
use crate::error::{Error, Result};

/// The files `inputs` name, in order: a file as given, a folder's images sorted by name, a glob
/// pattern's matching image files (sorted), a `.txt` list's sources. A path that does not exist,
/// a pattern or folder that names nothing, or no file at all is an error naming it.
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        expand_one(input, &mut out, 0)?;
    }
    if out.is_empty() {
        return Err(Error::Invalid("no images given".into()));
    }
    Ok(out)
}

/// List files may name list files; this many levels at most (a list naming itself is an error,
/// not a hang).
const MAX_LIST_DEPTH: usize = 8;

fn expand_one(input: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if input.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(|e| Error::io(input, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image_path(p))
            .collect();
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no images in this folder",
                input.display()
            )));
        }
        files.sort();
        out.extend(files);
    } else if input.is_file() && is_list(input) {
        if depth >= MAX_LIST_DEPTH {
            return Err(Error::Invalid(format!(
                "{}: lists nested more than {MAX_LIST_DEPTH} deep (does a list name itself?)",
                input.display()
            )));
        }
        let text = std::fs::read_to_string(input).map_err(|e| Error::io(input, e))?;
        let base = input.parent().unwrap_or(Path::new("."));
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let source = base.join(line);
            expand_one(&source, out, depth + 1)
                .map_err(|e| Error::Invalid(format!("{} line {}: {e}", input.display(), i + 1)))?;
        }
    } else if input.is_file() {
        out.push(input.to_path_buf());
    } else if is_pattern(input) {
        let pattern = input.to_string_lossy();
        let paths = glob::glob(&pattern)
            .map_err(|e| Error::Invalid(format!("{pattern}: not a glob pattern: {e}")))?;
        // Image files only, as a folder's (a `dir/*` pattern leaves its notes out).
        let mut files: Vec<PathBuf> = paths
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file() && is_image_path(p))
            .collect();
        if files.is_empty() {
            return Err(Error::Invalid(format!("{pattern}: matches no image file")));
        }
        files.sort();
        out.extend(files);
    } else {
        return Err(Error::Invalid(format!(
            "{}: no such file or folder",
            input.display()
        )));
    }
    Ok(())
}

/// A `.txt` file is a list of sources, as Ultralytics reads one.
fn is_list(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
}

fn is_pattern(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// A file `predict` could not read, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    /// The file.
    pub file: PathBuf,
    /// What reading it said.
    pub reason: String,
}

/// The files a `predict` run skipped: each named once on stderr as it is met, then counted by
/// [`SkipLog::finish`], whose error makes the exit status say that some were.
#[derive(Debug, Default)]
pub struct SkipLog {
    skipped: Vec<Skipped>,
}

impl SkipLog {
    /// Records `file` as unreadable because of `error`, and says so.
    pub fn skip(&mut self, file: &Path, error: impl std::fmt::Display) {
        // The whole chain of causes (`{:#}` for an anyhow error), without the leading
        // `reading FILE: ` / `FILE: ` contexts: the line names the file once.
        let text = format!("{error:#}");
        let path = file.display().to_string();
        let (named, reading) = (format!("{path}: "), format!("reading {path}: "));
        let mut reason = text.as_str();
        while let Some(rest) = reason
            .strip_prefix(&named)
            .or_else(|| reason.strip_prefix(&reading))
        {
            reason = rest;
        }
        let reason = reason.to_string();
        eprintln!("skipped {}: {reason}", file.display());
        self.skipped.push(Skipped {
            file: file.to_path_buf(),
            reason,
        });
    }

    /// The files skipped so far.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Ends the run: `Ok` when nothing was skipped; otherwise an error counting the skipped
    /// files against the `done` ones (everything readable was predicted and written by then).
    pub fn finish(&self, done: usize) -> Result<()> {
        match self.skipped.len() {
            0 => Ok(()),
            n => Err(Error::Invalid(format!(
                "{n} of {} files could not be read and were skipped (named above); the other \
                 {done} were predicted and written",
                n + done
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_globs_and_lists_expand_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        for f in ["a/2.jpg", "a/1.png", "a/notes.md", "a/b/3.jpg"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let folder = expand(&[root.join("a")]).unwrap();
        assert_eq!(folder, vec![root.join("a/1.png"), root.join("a/2.jpg")]);
        let everything = expand(&[root.join("a/*")]).unwrap();
        assert_eq!(everything, vec![root.join("a/1.png"), root.join("a/2.jpg")]);
        let recursive = expand(&[root.join("a/**/*.jpg")]).unwrap();
        assert_eq!(
            recursive,
            vec![root.join("a/2.jpg"), root.join("a/b/3.jpg")]
        );
        std::fs::write(root.join("list.txt"), "# two\na/b/3.jpg\n\na/1.png\n").unwrap();
        let listed = expand(&[root.join("list.txt")]).unwrap();
        assert_eq!(listed, vec![root.join("a/b/3.jpg"), root.join("a/1.png")]);

        let err = expand(&[root.join("a/*.gif")]).unwrap_err().to_string();
        assert!(
            err.contains("*.gif") && err.contains("matches no image file"),
            "{err}"
        );
        std::fs::write(root.join("bad.txt"), "a/1.png\nmissing.jpg\n").unwrap();
        let err = expand(&[root.join("bad.txt")]).unwrap_err().to_string();
        assert!(
            err.contains("bad.txt line 2") && err.contains("missing.jpg"),
            "{err}"
        );
        std::fs::write(root.join("self.txt"), "self.txt\n").unwrap();
        let err = expand(&[root.join("self.txt")]).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn the_skip_log_counts_and_fails_only_when_something_was_skipped() {
        let mut log = SkipLog::default();
        assert!(log.finish(3).is_ok());
        log.skip(Path::new("x/empty.jpg"), "empty file");
        let err = log.finish(3).unwrap_err().to_string();
        assert!(
            err.contains("1 of 4 files") && err.contains("other 3"),
            "{err}"
        );
        assert_eq!(log.skipped()[0].reason, "empty file");
    }
}
