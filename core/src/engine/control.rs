//! How a training starts (fresh or resumed) and how it may stop (after an epoch, on Ctrl-C).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// How a call to [`fit`](crate::engine::fit) starts and may stop.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Continue from `<run>/checkpoint.safetensors`.
    pub resume: bool,
    /// Stop cleanly after this many completed epochs.
    pub stop_after: Option<usize>,
    /// Set (by a Ctrl-C handler, say) to stop after the current step. The epoch in progress is
    /// dropped; the checkpoint of the last completed epoch stays, and resuming redoes that epoch
    /// exactly.
    pub stop: Option<Arc<AtomicBool>>,
    /// No progress output.
    pub quiet: bool,
    /// The resolved configuration, written to `<run>/config.toml` (see [`crate::config::to_toml`]).
    pub config_toml: Option<String>,
}

impl RunControl {
    /// A fresh run without progress output (tests, scripts, library callers).
    pub fn quiet() -> Self {
        RunControl {
            quiet: true,
            ..Default::default()
        }
    }
}
