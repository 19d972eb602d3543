use clap::Parser;

use passnum::cli::{self, Cli};
use passnum::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("passnum: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    passnum::logging::init(config.log_format);
    match cli::run(cli, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("passnum: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
