//! Entry point: read `.env.local` and `.env`, parse the command line, run, map the outcome to an exit code.

use std::path::Path;
use std::process::ExitCode;

use migrate::{cli, commands, dotenv, exit_code, output};

/// mimalloc: transform builds and drops millions of small values; glibc's allocator was a
/// quarter of its time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if let Err(error) = dotenv::load_all(Path::new(".")) {
        eprintln!("error: {error}");
        return ExitCode::from(exit_code::USAGE);
    }
    let (cli, matches) = cli::parse();
    output::init_logging(&cli.global);
    match commands::run(cli, &matches) {
        Ok(code) => ExitCode::from(code),
        Err(error) => ExitCode::from(output::report_error(&error)),
    }
}
