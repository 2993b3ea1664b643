//! The `vigil` binary: parse arguments, run, map the outcome to an exit status.

fn main() -> std::process::ExitCode {
    vigil::cli::main()
}
