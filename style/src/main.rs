fn main() -> std::process::ExitCode {
    ferrovis_app::process::main(ferrovis_style::run)
}
