use clap::Parser;

fn main() -> anyhow::Result<()> {
    ferrovis_style::run(ferrovis_style::Cli::parse())
}
