//! The `style` task: Neural style transfer with VGG.
//!
//! `main.rs` only parses arguments; the commands live here so other programs can call them.

use clap::{Parser, Subcommand};

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
