//! The `main` of every task binary: one place decides the allocator policy, where log lines go
//! and what the exit status says.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::interrupt;

/// Runs a binary: tunes the allocator ([`crate::allocator::reuse_large_blocks`]), installs the
/// logging ([`init_logging`]), parses the command line and runs it; see [`exit_code`] for the
/// status.
pub fn main<C: clap::Parser>(run: impl FnOnce(C) -> anyhow::Result<()>) -> ExitCode {
    start();
    exit_code(run(C::parse()))
}

/// What [`main`] does before parsing: the allocator policy and the logging. For a program that
/// parses its command line its own way and then runs a task's `run`.
pub fn start() {
    crate::allocator::reuse_large_blocks();
    init_logging();
}

/// Sends `tracing` events (the engine's "interrupted", "inf/NaN gradients", the loader's "sample
/// skipped", …) to stderr: warnings and errors unless `RUST_LOG` says otherwise, in colour only
/// on a terminal so log files stay plain text. A second call does nothing.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// The exit status of a run: 130 when Ctrl-C stopped it (whatever it returned; see
/// [`crate::interrupt`]), 1 on an error, which is printed with its causes (`error: outer:
/// inner`, no backtrace), 0 otherwise.
pub fn exit_code<E: std::fmt::Display>(result: std::result::Result<(), E>) -> ExitCode {
    if let Err(e) = &result {
        eprintln!("error: {e:#}");
    }
    if interrupt::interrupted() {
        eprintln!(
            "interrupted: the last completed epoch's checkpoint is kept; `train --resume RUN` \
             continues it"
        );
        return ExitCode::from(interrupt::EXIT_INTERRUPTED);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
