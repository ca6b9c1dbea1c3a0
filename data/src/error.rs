//! The error type of `ferrovis-data`: every message names the file (and line) concerned.

use std::path::PathBuf;

/// Errors returned by `ferrovis-data`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image or label file could not be decoded or written.
    #[error("{}: {reason}", path.display())]
    Image {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An error reported by OpenCV.
    #[error("opencv: {0}")]
    OpenCv(#[from] opencv::Error),
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
}
