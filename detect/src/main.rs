use clap::Parser;

fn main() -> anyhow::Result<()> {
    ferrovis_detect::run(ferrovis_detect::Cli::parse())
}
