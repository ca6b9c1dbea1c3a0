fn main() -> std::process::ExitCode {
    ferrovis_app::process::main(ferrovis_classify::run)
}
