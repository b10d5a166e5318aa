//! The server side of `scripts/bench.sh`: lms-api serving the catalog from its cache, and next
//! to it a bare actix server that returns the same bytes from memory (the floor cost of actix
//! answering with those bytes).
//!
//! The fake DCS runs in-process with 200 published books. lms-api is built as `lms-api serve`
//! builds it (settings from the environment and `.env`, SQLite, migrations, the real DCS client,
//! the local cache, background tasks, request logging at the configured level); only the
//! database (a temporary SQLite file), the DCS URL and the JWT secret (random) are set here.
//!
//! Prints `key=value` lines (`lms_api_url`, `baseline_url`, `dcs_url`, `teacher_token`,
//! `admin_token`, `pid`), then `ready`, and serves until SIGINT or SIGTERM.
//!
//! ```sh
//! cargo run --release -p lms-bench --bin bench_server -- --lms-port 8700 --baseline-port 8701
//! ```

use lms_bench as bench_support;

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use clap::Parser;
use domain::catalog::BookQuery;
use lms_api::auth::{JwtKeys, Role};
use lms_api::settings::{EnvSource, Settings};
use uuid::Uuid;

/// Page sizes of `GET /api/v1/books?limit=N` that are warmed and that the baseline serves.
const BENCH_LIMITS: &[u64] = &[1, 20, 200];
/// Lifetime of the printed tokens: longer than any benchmark run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Parser)]
#[command(about = "lms-api and a from-memory baseline, for load tests")]
struct Args {
    /// Port of lms-api on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    lms_port: u16,
    /// Port of the baseline server on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    baseline_port: u16,
    /// Published books in the fake DCS (the sample book included).
    #[arg(long, default_value_t = 200)]
    books: usize,
}

/// The baseline's whole state: the body for each benchmarked query string.
struct BaselineBodies(HashMap<String, Bytes>);

/// The baseline handler: a map lookup and the bytes, nothing else.
async fn baseline_books(req: HttpRequest, bodies: web::Data<BaselineBodies>) -> HttpResponse {
    match bodies.0.get(req.query_string()) {
        Some(body) => HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(body.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let source = EnvSource::load().map_err(std::io::Error::other)?;
    let _log_writer = lms_api::telemetry::init_tracing(source.get("RUST_LOG").as_deref());
    actix_web::rt::System::new().block_on(run(args, source))
}

async fn run(args: Args, source: EnvSource) -> std::io::Result<()> {
    let dcs = bench_support::start_dcs_with_books(args.books).await?;
    let data_dir = tempfile::tempdir()?;
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        data_dir.path().join("lms.db").display()
    );
    let jwt_secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let overrides = HashMap::from([
        ("DATABASE_URL", database_url),
        ("DREAM_CENTRAL_STORAGE_URL", dcs.base_url().to_owned()),
        ("LMS_JWT_SECRET", jwt_secret),
    ]);
    let settings =
        Settings::from_lookup(|name| overrides.get(name).cloned().or_else(|| source.get(name)))
            .map_err(std::io::Error::other)?;
    let state = lms_api::build_state(settings)
        .await
        .map_err(std::io::Error::other)?;
    let _background = lms_api::background::start(
        state.services.catalog.clone(),
        &state.services.cache,
        &state.settings.cache,
    );

    // Warm the cache with the benchmarked pages; the baseline gets exactly these bytes.
    state
        .services
        .catalog
        .warm_up()
        .await
        .map_err(std::io::Error::other)?;
    let mut bodies = HashMap::new();
    for &limit in BENCH_LIMITS {
        let query =
            BookQuery::new(None, false, None, None, Some(limit)).map_err(std::io::Error::other)?;
        let page = state
            .services
            .catalog
            .books(&query)
            .await
            .map_err(std::io::Error::other)?;
        bodies.insert(format!("limit={limit}"), page.value);
    }
    let bodies = web::Data::new(BaselineBodies(bodies));

    // The server exactly as `lms-api serve` runs it (its connection layer included).
    let lms_listener = std::net::TcpListener::bind(("127.0.0.1", args.lms_port))?;
    let lms_addr = lms_listener.local_addr()?;
    let lms = lms_api::cli::http_server(state.clone(), lms_listener)?;
    let baseline = HttpServer::new(move || {
        App::new()
            .app_data(bodies.clone())
            .route("/api/v1/books", web::get().to(baseline_books))
    })
    .shutdown_timeout(1)
    .bind(("127.0.0.1", args.baseline_port))?;

    let keys = JwtKeys::from_secret(&state.settings.jwt_secret);
    let token = |role| {
        keys.issue(Uuid::new_v4(), role, TOKEN_TTL)
            .map_err(std::io::Error::other)
    };
    println!("lms_api_url=http://{lms_addr}");
    println!("baseline_url=http://{}", baseline.addrs()[0]);
    println!("dcs_url={}", dcs.base_url());
    println!("teacher_token={}", token(Role::Teacher)?);
    println!("admin_token={}", token(Role::Admin)?);
    println!("pid={}", std::process::id());
    println!("ready");

    // The baseline stops on SIGINT/SIGTERM (actix's own signal handling) and then stops
    // lms-api, whose server leaves signals to its caller.
    let lms_handle = lms.handle();
    let (lms_result, baseline_result) = tokio::join!(lms, async move {
        let result = baseline.run().await;
        lms_handle.stop(true).await;
        result
    });
    lms_result?;
    baseline_result?;
    drop(dcs);
    Ok(())
}
