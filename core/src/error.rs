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
    /// Weights could not be fetched: the message names the URL and where the file can be put
    /// by hand.
    #[error("{0}")]
    Download(String),
    /// An error reported by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A task's own error (a corrupt image, a bad label file, a data loader failure) passed
    /// through the engine as it is: its message and its chain of sources are kept, and the caller
    /// can downcast it (as `std::io::Error::other` boxes a foreign error).
    #[error(transparent)]
    Task(Box<dyn std::error::Error + Send + Sync + 'static>),
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

    /// An [`Error::Task`] boxing `source` (any error type, an `anyhow::Error` included).
    pub fn task(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::Task(source.into())
    }

    /// An [`Error::Checkpoint`] for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("x.jpg: truncated JPEG (no end-of-image marker)")]
    struct BadImage {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_task_error_keeps_its_message_its_chain_and_its_type() {
        let e = Error::task(BadImage {
            source: std::io::Error::other("unexpected end of file"),
        });
        assert_eq!(
            e.to_string(),
            "x.jpg: truncated JPEG (no end-of-image marker)"
        );
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("unexpected end of file"));
        let Error::Task(boxed) = e else {
            panic!("not a task error")
        };
        assert!(boxed.downcast_ref::<BadImage>().is_some());
    }
}
