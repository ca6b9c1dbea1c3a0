//! The error type of `ferrovis-core`: every message names the file, key or layer concerned.

use std::path::PathBuf;

/// Errors returned by `ferrovis-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file is malformed or uses something we do not support.
    #[error("{}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it, naming the tensor, key or byte offset.
        reason: String,
    },
    /// Weights do not fit the model they are loaded into (strict mode), or a load option is invalid.
    #[error("loading weights: {0}")]
    Load(String),
    /// An invalid name, option or setting (unknown backbone, device, output stride…).
    #[error("{0}")]
    Invalid(String),
    /// An error reported by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Checkpoint`] for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
