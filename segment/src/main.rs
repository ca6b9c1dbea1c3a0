fn main() -> std::process::ExitCode {
    ferrovis_app::process::main(ferrovis_segment::run)
}
