use clap::Parser;

fn main() -> std::process::ExitCode {
    ferrovis_core::allocator::reuse_large_blocks();
    ferrovis_core::cli::exit_code(ferrovis_segment::run(ferrovis_segment::Cli::parse()))
}
