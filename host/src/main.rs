fn main() -> std::process::ExitCode {
    stratbox::cli::main()
}
