//! `rusvel-host`: drives the plugin host from the command line.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
