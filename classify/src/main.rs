use clap::Parser;

fn main() -> std::process::ExitCode {
    ferrovis_core::allocator::reuse_large_blocks();
    ferrovis_core::cli::exit_code(ferrovis_classify::run(ferrovis_classify::Cli::parse()))
}
