//! `dcs-mock --port <port> --books <dir>`: the fake DCS as a process.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dcs_mock::{MockConfig, MockDcs};
use tracing_subscriber::EnvFilter;

/// A fake Dream Central Storage speaking the recorded DCS contract, with `/_mock/` test knobs.
#[derive(Debug, Parser)]
#[command(name = "dcs-mock", version)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Directory of books, one sub-directory per book (default: the repository's testdata/books).
    #[arg(long)]
    books: Option<PathBuf>,
    /// Lifetime of login tokens, in seconds.
    #[arg(long, default_value_t = 1800)]
    token_ttl: u64,
    /// Base URL that presigned URLs point at (default: the listening URL).
    #[arg(long)]
    public_url: Option<String>,
    /// Admin login email.
    #[arg(long, default_value = "admin@admin.com")]
    admin_email: String,
    /// Admin login password.
    #[arg(
        long,
        env = "DCS_MOCK_ADMIN_PASSWORD",
        default_value = "admin",
        hide_env_values = true
    )]
    admin_password: String,
    /// HS256 secret for tokens (default: random at each start).
    #[arg(long, env = "DCS_MOCK_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let mut config = MockConfig {
        bind: SocketAddr::new(args.bind, args.port),
        token_ttl: Duration::from_secs(args.token_ttl),
        public_base_url: args.public_url,
        admin_email: args.admin_email,
        admin_password: args.admin_password,
        ..MockConfig::default()
    };
    if let Some(books) = args.books {
        config.books_dir = books;
    }
    if let Some(secret) = args.jwt_secret {
        config.jwt_secret = secret;
    }
    let dcs = match MockDcs::start(config).await {
        Ok(dcs) => dcs,
        Err(error) => {
            eprintln!("dcs-mock: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The first stdout line is the URL, for scripts and tests that start the binary.
    println!("dcs-mock listening on {}", dcs.base_url());
    wait_for_signal().await;
    tracing::info!("shutting down");
    dcs.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
