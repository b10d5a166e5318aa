//! The `lms-api` command line: `serve` (default), `migrate` and `token`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::app::{build_state, create_app};
use crate::auth::{JwtKeys, Role};
use crate::db::{self, DbSetupError};
use crate::settings::{EnvSource, Settings};
use crate::telemetry;

/// How long in-flight requests may run after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Longest lifetime `lms-api token` issues (one year).
const MAX_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// The LMS API server.
///
/// Configuration comes from the environment and a `.env` file in the working directory
/// (see the README for the variables).
#[derive(Debug, Parser)]
#[command(name = "lms-api", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations, then run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a bearer JWT signed with LMS_JWT_SECRET (for local use and tests).
    Token(TokenArgs),
    /// Create the buckets (MINIO_BUCKET_NAME, MINIO_TEACHERS_BUCKET) and allow the frontend's
    /// origins (LMS_FRONTEND_ORIGINS) to GET from them, where the server supports CORS.
    StorageInit,
}

/// Arguments of `lms-api token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Role claim of the token.
    #[arg(long, value_enum)]
    pub role: Role,
    /// Subject (user id) claim; must be a UUID.
    #[arg(long)]
    pub sub: Uuid,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_TTL_SECS))]
    pub ttl: u64,
    /// For `--role publisher`: the DCS publisher id the account acts for (it reads only that
    /// publisher's books).
    #[arg(long)]
    pub publisher_id: Option<i64>,
}

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database or the services could not be set up.
    #[error(transparent)]
    Startup(#[from] crate::app::StartupError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (LMS_BIND): {source}")]
    Bind {
        /// The address from `LMS_BIND`.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Server(#[source] std::io::Error),
}

/// Entry point of the binary: parses arguments, loads settings and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();

    let source = match EnvSource::load() {
        Ok(source) => source,
        Err(err) => return fail(&err),
    };
    let log_writer = telemetry::init_tracing(source.get("RUST_LOG").as_deref());
    let outcome = run_command(cli, &source);
    // Log lines still queued go out before the final error message.
    drop(log_writer);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn run_command(cli: Cli, source: &EnvSource) -> Result<(), String> {
    let settings = Settings::from_lookup(|name| source.get(name)).map_err(|e| e.to_string())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => actix_web::rt::System::new()
            .block_on(serve(settings))
            .map_err(|e| e.to_string()),
        Command::Migrate => actix_web::rt::System::new()
            .block_on(migrate(settings))
            .map_err(|e| e.to_string()),
        Command::Token(args) => token(&settings, &args),
        Command::StorageInit => actix_web::rt::System::new()
            .block_on(storage_init(&settings))
            .map_err(|e| e.to_string()),
    }
}

/// `lms-api storage-init`: creates both buckets, then applies the CORS rule, printing what
/// happened to each bucket on stdout.
pub async fn storage_init(settings: &Settings) -> Result<(), storage::StorageError> {
    let storage = crate::object_storage::Storage::from_settings(settings)?;
    let rule = storage::CorsRule {
        origins: settings.frontend_origins.clone(),
        max_age_secs: 3600,
    };
    for store in [&storage.content, &storage.teachers] {
        store.create_bucket().await?;
        store.ready().await?;
        let cors = if rule.origins.is_empty() {
            "CORS: not set (LMS_FRONTEND_ORIGINS is empty)".to_owned()
        } else {
            match store.set_cors(&rule).await? {
                storage::CorsOutcome::Applied => {
                    format!("CORS: GET from {}", rule.origins.join(", "))
                }
                storage::CorsOutcome::Unsupported(reason) => format!(
                    "CORS: NOT applied, this server does not support bucket CORS ({reason}); \
                     configure it on the server or serve the frontend from the same origin"
                ),
                storage::CorsOutcome::NotNeeded(why) => format!("CORS: not needed ({why})"),
            }
        };
        println!("bucket {}: ready; {cors}", store.bucket());
    }
    Ok(())
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("lms-api: error: {err}");
    ExitCode::FAILURE
}

/// Runs the server until SIGTERM or Ctrl-C, then drains in-flight requests.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    tracing::info!(
        environment = settings.environment.as_str(),
        database = settings.database_url.redacted(),
        "starting lms-api {}",
        env!("CARGO_PKG_VERSION")
    );
    let state = build_state(settings).await?;
    let addr = state.settings.bind;
    let _background = crate::background::start(
        state.services.catalog.clone(),
        &state.services.cache,
        &state.settings.cache,
    );
    // In the background: start-up does not wait for DCS.
    let _webhook_registration = crate::webhooks::startup_registration::start(
        state.webhook_registrar("startup"),
        state.settings.guards.webhook_recheck_interval,
    );
    let _log_pruning = crate::webhooks::log_pruning::start(
        domain::webhook_log::DeliveryLog::new(crate::db::SqlDeliveryStore::new(state.db.clone())),
        state.settings.guards.webhook_log_retention,
    );

    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let server = http_server(state.clone(), listener).map_err(ServeError::Server)?;
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
        handle.stop(true).await;
    });

    server.await.map_err(ServeError::Server)?;
    if let Err(err) = state.db.close_by_ref().await {
        tracing::warn!(error = %err, "closing the database pool failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The HTTP server over `listener` as `serve` runs it: workers, connection limits and client
/// timeouts from `LMS_WORKERS`, `LMS_MAX_CONNECTIONS`, `LMS_CLIENT_REQUEST_TIMEOUT` and
/// `LMS_CLIENT_DISCONNECT_TIMEOUT`, signals left to the caller, 30 s of grace at shutdown.
/// Tests run it over port 0.
///
/// Built from actix-server and actix-http directly (what `actix_web::HttpServer` does inside)
/// so that each connection can be wrapped: the errors actix-http answers by itself get the
/// JSON body every other error has ([`crate::protocol_errors`]).
pub fn http_server(
    state: crate::AppState,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    use actix_http::HttpService;
    use actix_service::{ServiceFactoryExt as _, fn_service, map_config};
    use actix_web::dev::AppConfig;

    let guards = state.settings.guards.clone();
    let addr = listener.local_addr()?;
    let mut builder = actix_server::Server::build();
    if let Some(workers) = guards.workers {
        builder = builder.workers(workers);
    }
    // Idle keep-alive connections close when shutdown starts instead of holding it up.
    let shutdown = builder.graceful_shutdown_signal();
    let server = builder
        // Signals are handled by `serve` so that Ctrl-C drains like SIGTERM instead of aborting.
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .max_concurrent_connections(guards.max_connections)
        .listen("lms-api", listener, move || {
            let shutdown = shutdown.clone();
            let app = create_app(state.clone());
            let http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .client_request_timeout(guards.client_request_timeout)
                .client_disconnect_timeout(guards.client_disconnect_timeout)
                .local_addr(addr)
                // Request URLs are never built from the app's host setting (links come from
                // LMS_PUBLIC_URL), so the default AppConfig is enough.
                .h1(map_config(app, |_| AppConfig::default()));
            fn_service(|io: actix_rt::net::TcpStream| std::future::ready(Ok::<_, ()>(accept(io))))
                .and_then(http.map_err(|_| ()))
        })?;
    tracing::info!("listening on http://{addr}");
    Ok(server.run())
}

/// Prepares an accepted connection: `TCP_NODELAY`, then the protocol-error wrapper.
///
/// Without `TCP_NODELAY` (actix-http leaves it unset unless asked) a streamed answer, whose
/// head and first body chunk go out in separate writes, waits for the client's delayed ACK
/// (40 ms on Linux) on a keep-alive connection: every media range request of the soak
/// benchmark took 40 to 45 ms while the catalog reads beside it took 0.3 ms.
fn accept(
    io: actix_rt::net::TcpStream,
) -> (
    crate::protocol_errors::JsonProtocolErrors<actix_rt::net::TcpStream>,
    Option<std::net::SocketAddr>,
) {
    if let Err(error) = io.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
    }
    let peer = io.peer_addr().ok();
    (crate::protocol_errors::JsonProtocolErrors::new(io), peer)
}

/// Applies pending migrations and returns.
pub async fn migrate(settings: Settings) -> Result<(), DbSetupError> {
    tracing::info!(
        database = settings.database_url.redacted(),
        "applying migrations"
    );
    let db = db::connect(&settings.database_url).await?;
    let outcome = db::migrate(&db).await;
    if let Err(err) = db.close_by_ref().await {
        tracing::warn!(error = %err, "closing the database pool failed");
    }
    outcome?;
    tracing::info!("database is up to date");
    Ok(())
}

/// Prints a token for the given role and subject.
pub fn token(settings: &Settings, args: &TokenArgs) -> Result<(), String> {
    let keys = JwtKeys::from_secret(&settings.jwt_secret);
    let ttl = Duration::from_secs(args.ttl);
    let token = match (args.role, args.publisher_id) {
        (Role::Publisher, Some(publisher_id)) => {
            keys.issue_for_publisher(args.sub, publisher_id, ttl)
        }
        (_, Some(_)) => return Err("--publisher-id goes with --role publisher only".to_owned()),
        _ => keys.issue(args.sub, args.role, ttl),
    }
    .map_err(|err| err.to_string())?;
    println!("{token}");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
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

#[cfg(test)]
mod tests {
    use super::accept;

    #[actix_rt::test]
    async fn accepted_connections_disable_nagle() {
        let listener = actix_rt::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let _client = actix_rt::net::TcpStream::connect(address).await.unwrap();
        let (io, _) = listener.accept().await.unwrap();
        assert!(
            !io.nodelay().unwrap(),
            "a fresh socket has Nagle's algorithm on"
        );
        let (wrapped, peer) = accept(io);
        assert!(wrapped.get_ref().nodelay().unwrap());
        assert!(peer.is_some());
    }
}
