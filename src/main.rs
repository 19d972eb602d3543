use clap::Parser;

use passnum::cli::{self, Cli};
use passnum::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    return_large_blocks_to_the_system();
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

/// Each password check works in a 19 MiB block (argon2). glibc's malloc raises
/// its mmap threshold once such a block is freed and keeps later ones in its
/// heap, so every login left about 19 MiB behind (measured: 20 MiB to 235 MiB
/// over 12 logins). A fixed 1 MiB threshold hands large blocks back at once.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter, under the arena's lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
