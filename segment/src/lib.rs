//! The `segment` task: Semantic segmentation with U-Net and DeepLab on pretrained encoders.
//!
//! `main.rs` only parses arguments; the commands live here so other programs can call them.

pub mod deeplab;
pub mod unet;

use clap::{Parser, Subcommand};
use ferrovis_core::cli::{run_weights, WeightsCommand};

/// Command line of the `segment` binary.
#[derive(Debug, Parser)]
#[command(
    name = "segment",
    version,
    about = "Semantic segmentation with U-Net and DeepLab on pretrained encoders"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `segment` subcommands.
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
