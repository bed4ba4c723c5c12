use clap::Parser;

fn main() -> std::process::ExitCode {
    playbook::cli::Cli::parse().run()
}
