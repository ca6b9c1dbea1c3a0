//! The `detect` task: YOLOv8 object detection: fine-tune, validate, predict.
//!
//! `main.rs` only parses arguments; the commands live here so other programs can call them.

use clap::{Parser, Subcommand};

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
