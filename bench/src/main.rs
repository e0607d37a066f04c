//! The `bench` binary: parses the command line and runs the requested benchmark.

mod append;
mod args;
mod backforge;
mod baseline;
mod cpu;
mod payload;
mod report;
mod stats;
mod suite;
mod workload;

use std::process::ExitCode;

use args::Command;

#[tokio::main]
async fn main() -> ExitCode {
    let command = match args::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("bench: {message}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Command::Suite(args) => {
            eprintln!(
                "running the benchmark suite{}",
                if args.quick {
                    " (--quick, under a minute)"
                } else {
                    ""
                }
            );
            match suite::run(&args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("bench: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Append(args) => {
            eprintln!(
                "running the append benchmark (about {} s)",
                append::expected_length(&args).as_secs()
            );
            match append::run(&args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("bench: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
