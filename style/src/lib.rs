//! The `style` task: Neural style transfer with VGG.
//!
//! `main.rs` only parses arguments; the commands live here so other programs can call them.

use clap::{Parser, Subcommand};
use ferrovis_core::cli::{run_weights, WeightsCommand};

/// Command line of the `style` binary.
#[derive(Debug, Parser)]
#[command(name = "style", version, about = "Neural style transfer with VGG")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `style` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect or convert checkpoint files (.pth/.pt zip or legacy, .safetensors, .ot).
    #[command(subcommand)]
    Weights(WeightsCommand),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Weights(cmd) => run_weights(&cmd)?,
    }
    Ok(())
}
