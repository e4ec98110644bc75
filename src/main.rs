//! The `remex` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    remex::cli::main()
}
