fn main() -> std::process::ExitCode {
    ferrovis_app::process::main(ferrovis_detect::run)
}
