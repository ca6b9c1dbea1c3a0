//! The `classify` task: Transfer learning for image classification (ResNet, VGG, EfficientNet, MobileNetV2).
//!
//! `main.rs` only parses arguments; the commands live here so other programs can call them.

use clap::{Parser, Subcommand};
use ferrovis_core::cli::{run_weights, WeightsCommand};

/// Command line of the `classify` binary.
#[derive(Debug, Parser)]
#[command(
    name = "classify",
    version,
    about = "Transfer learning for image classification (ResNet, VGG, EfficientNet, MobileNetV2)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `classify` subcommands.
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
