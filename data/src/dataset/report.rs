//! What a data set scan found wrong: every skipped file or line, with its location.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How a scan treats bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanOptions {
    /// Stop at the first problem with its message, instead of skipping and counting it.
    pub strict: bool,
}

/// One skipped file or line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file concerned.
    pub path: PathBuf,
    /// The 1-based line, for label and list files.
    pub line: Option<usize>,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Everything a scan skipped, for the summary printed at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Images, masks and label lines that were skipped because they are bad.
    pub problems: Vec<Problem>,
    /// Files that are not images (by extension) and were ignored, like `imageNotFound.gif`.
    pub non_images: Vec<PathBuf>,
    /// Notes that are not errors: label files with no image, images with no labels, …
    pub notes: Vec<Problem>,
}

impl ScanReport {
    /// Records a problem; in strict mode returns it as the error instead.
    pub fn problem(
        &mut self,
        options: ScanOptions,
        path: &Path,
        line: Option<usize>,
        reason: impl Into<String>,
    ) -> Result<()> {
        let problem = Problem {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        };
        if options.strict {
            return Err(Error::dataset(
                problem.path,
                problem.line,
                format!("{} (strict mode)", problem.reason),
            ));
        }
        tracing::debug!(%problem, "skipped");
        self.problems.push(problem);
        Ok(())
    }

    /// Records a note.
    pub fn note(&mut self, path: &Path, reason: impl Into<String>) {
        self.notes.push(Problem {
            path: path.to_path_buf(),
            line: None,
            reason: reason.into(),
        });
    }

    /// True when nothing was skipped or noted.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.non_images.is_empty() && self.notes.is_empty()
    }

    /// Merges another report into this one.
    pub fn extend(&mut self, other: ScanReport) {
        self.problems.extend(other.problems);
        self.non_images.extend(other.non_images);
        self.notes.extend(other.notes);
    }
}

impl fmt::Display for ScanReport {
    /// A summary listing every problem (file and line), then the counts of ignored files and notes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            writeln!(f, "no bad files or lines")?;
        } else {
            writeln!(f, "{} skipped (bad files or lines):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
        }
        if !self.non_images.is_empty() {
            writeln!(f, "{} non-image files ignored:", self.non_images.len())?;
            for p in &self.non_images {
                writeln!(f, "  {}", p.display())?;
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}
