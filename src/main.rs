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
            let message = describe(&e);
            tracing::error!("{message}");
            eprintln!("passnum: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: many of our errors already
/// include their cause's text.
fn describe(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !message.contains(&cause) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&cause);
        }
    }
    message
}
