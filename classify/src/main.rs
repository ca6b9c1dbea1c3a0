use clap::Parser;

fn main() -> anyhow::Result<()> {
    ferrovis_classify::run(ferrovis_classify::Cli::parse())
}
