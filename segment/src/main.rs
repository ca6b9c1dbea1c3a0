use clap::Parser;

fn main() -> anyhow::Result<()> {
    ferrovis_segment::run(ferrovis_segment::Cli::parse())
}
