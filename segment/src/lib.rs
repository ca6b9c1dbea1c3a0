//! The `segment` task: Semantic segmentation with U-Net and DeepLab on pretrained encoders.
//!
//! `main.rs` only parses arguments; the commands live here so other programs can call them.

use clap::{Parser, Subcommand};

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
    /// Print the library versions this binary was built against.
    Info,
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info => println!(
            "{} {} (libtorch via tch, OpenCV via opencv)",
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION")
        ),
    }
    Ok(())
}
