//! The four task command lines in one executable, `ferrovis-cli TASK ARGS…` (TASK: classify,
//! detect, segment, style), each parsed and run exactly as its own binary does. Tests run it as a
//! user runs the binaries (a real process to kill, real exit codes and messages) while linking
//! libtorch and OpenCV once instead of four more times.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ferrovis_app::process::start();
    // The task name stands where each binary's own name would (argv[0]).
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let task = argv.first().and_then(|t| t.to_str()).unwrap_or_default();
    let result = match task {
        "classify" => ferrovis_classify::run(ferrovis_classify::Cli::parse_from(&argv)),
        "detect" => ferrovis_detect::run(ferrovis_detect::Cli::parse_from(&argv)),
        "segment" => ferrovis_segment::run(ferrovis_segment::Cli::parse_from(&argv)),
        "style" => ferrovis_style::run(ferrovis_style::Cli::parse_from(&argv)),
        _ => Err(anyhow::anyhow!(
            "usage: ferrovis-cli classify|detect|segment|style ARGS… (got {task:?})"
        )),
    };
    ferrovis_app::process::exit_code(result)
}
