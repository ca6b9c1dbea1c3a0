//! The `detect` task: YOLOv8 object detection: fine-tune, validate, predict.
//!
//! `main.rs` only parses arguments; the commands live here so other programs can call them.

pub mod assigner;
pub mod boxes;
pub mod loss;
pub mod postprocess;
pub mod weights;
pub mod yolov8;

use clap::{Parser, Subcommand};
use ferrovis_core::cli::{run_weights, WeightsCommand};

/// Command line of the `detect` binary.
#[derive(Debug, Parser)]
#[command(
    name = "detect",
    version,
    about = "YOLOv8 object detection: fine-tune, validate, predict"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `detect` subcommands.
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
