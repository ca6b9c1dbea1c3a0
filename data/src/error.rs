//! The error type of `ferrovis-data`: every message names the file (and line) concerned.

use std::path::{Path, PathBuf};

/// Errors returned by `ferrovis-data`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image or mask file could not be decoded or written.
    #[error("{}: {reason}", path.display())]
    Image {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A data set file (label, list, YAML, XML) is malformed; `line` is 1-based when known.
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Dataset {
        /// The file concerned.
        path: PathBuf,
        /// The 1-based line, where the problem is on one line.
        line: Option<usize>,
        /// What went wrong.
        reason: String,
    },
    /// A transform or loader was given impossible parameters.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A run that did what it could but not everything: files skipped, a video cut short.
    #[error("{0}")]
    Incomplete(String),
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error reported by OpenCV.
    #[error("opencv: {0}")]
    OpenCv(#[from] opencv::Error),
    /// An error reported by libtorch while collating tensors.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Image`] for `path`.
    pub fn image(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Image {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Dataset`] for `path`, at `line` when given.
    pub fn dataset(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Dataset {
            path: path.into(),
            line,
            reason: reason.into(),
        }
    }

    /// What went wrong without the file name, for a report that names the file itself (a scan's
    /// [`crate::dataset::Problem`], a loader's failure list); other errors as they display.
    pub fn reason(&self) -> String {
        match self {
            Error::Image { reason, .. } => reason.clone(),
            Error::Dataset {
                line: Some(l),
                reason,
                ..
            } => format!("line {l}: {reason}"),
            Error::Dataset { reason, .. } => reason.clone(),
            Error::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
