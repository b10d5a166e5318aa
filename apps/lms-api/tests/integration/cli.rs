//! The built `lms-api` binary: `token`, `migrate` and configuration errors.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use lms_api::auth::{JwtKeys, Role};
use secrecy::SecretString;
use uuid::Uuid;

use crate::support::{Engine, TestDatabase, postgres_admin_url, postgres_skipped};

const BINARY: &str = env!("CARGO_BIN_EXE_lms-api");

/// Runs the binary in `dir` with only the given variables (no inherited environment, so no
/// developer `.env` or shell variable leaks in).
fn run(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args).current_dir(dir).env_clear();
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("run lms-api")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn token_prints_a_jwt_that_verifies_with_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "cli-round-trip-secret-0123456789abcdef";
    let sub = Uuid::new_v4();
    let output = run(
        dir.path(),
        &[
            "token",
            "--role",
            "teacher",
            "--sub",
            &sub.to_string(),
            "--ttl",
            "120",
        ],
        &[("LMS_JWT_SECRET", secret)],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token on stdout: {stdout:?}"
    );
    let claims = JwtKeys::from_secret(&SecretString::from(secret))
        .verify(token)
        .expect("token verifies");
    assert_eq!(claims.sub, sub);
    assert_eq!(claims.role, Role::Teacher);
    let iat = claims.iat.expect("issued tokens carry iat");
    assert_eq!(claims.exp - iat, 120);
    let now = chrono::Utc::now().timestamp();
    assert!((iat - now).abs() < 60, "iat {iat} vs now {now}");

    // A different secret does not accept it.
    assert!(
        JwtKeys::from_secret(&SecretString::from("another-secret"))
            .verify(token)
            .is_err()
    );
}

#[test]
fn token_defaults_to_one_hour_and_reads_the_dotenv_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "secret-from-the-dotenv-file-0123456789";
    std::fs::write(
        dir.path().join(".env"),
        format!("LMS_JWT_SECRET={secret}\n"),
    )
    .unwrap();
    let sub = Uuid::new_v4();
    let output = run(
        dir.path(),
        &["token", "--role", "admin", "--sub", &sub.to_string()],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let claims = JwtKeys::from_secret(&SecretString::from(secret))
        .verify(String::from_utf8(output.stdout).unwrap().trim())
        .expect("signed with the .env secret");
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(
        claims.exp - claims.iat.expect("issued tokens carry iat"),
        Duration::from_secs(3600).as_secs() as i64
    );
}

#[test]
fn token_validates_role_sub_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Uuid::new_v4().to_string();
    let cases: [(&[&str], &str); 4] = [
        (&["token", "--role", "root", "--sub", &sub], "--role"),
        (&["token", "--role", "admin", "--sub", "42"], "--sub"),
        (
            &["token", "--role", "admin", "--sub", &sub, "--ttl", "0"],
            "--ttl",
        ),
        (&["token", "--role", "admin"], "--sub"),
    ];
    for (args, mentioned) in cases {
        let output = run(dir.path(), args, &[]);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(output.stdout.is_empty(), "{args:?}");
        let err = stderr(&output);
        assert!(err.contains(mentioned), "{args:?}: {err}");
    }
}

#[test]
fn publisher_tokens_carry_their_publisher_id() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "publisher-token-secret-0123456789abcdef";
    let sub = Uuid::new_v4().to_string();
    let output = run(
        dir.path(),
        &[
            "token",
            "--role",
            "publisher",
            "--sub",
            &sub,
            "--publisher-id",
            "7",
        ],
        &[("LMS_JWT_SECRET", secret)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let claims = JwtKeys::from_secret(&SecretString::from(secret))
        .verify(String::from_utf8(output.stdout).unwrap().trim())
        .expect("token verifies");
    assert_eq!(claims.role, Role::Publisher);
    assert_eq!(claims.publisher_id, Some(7));

    // Other roles act for no publisher.
    let output = run(
        dir.path(),
        &[
            "token",
            "--role",
            "teacher",
            "--sub",
            &sub,
            "--publisher-id",
            "7",
        ],
        &[("LMS_JWT_SECRET", secret)],
    );
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(
        stderr(&output).contains("--publisher-id"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn storage_init_creates_the_buckets_and_says_what_it_did_about_cors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let root_str = root.display().to_string();
    let output = run(
        dir.path(),
        &["storage-init"],
        &[
            ("STORAGE_FS_ROOT", &root_str),
            ("LMS_FRONTEND_ORIGINS", "https://lms.example.org"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    for bucket in ["publishers", "teachers"] {
        assert!(root.join(bucket).is_dir(), "{bucket} folder");
        assert!(
            stdout.contains(&format!("bucket {bucket}: ready; CORS: not needed")),
            "{stdout}"
        );
    }
    // Running it again is harmless.
    let again = run(
        dir.path(),
        &["storage-init"],
        &[("STORAGE_FS_ROOT", &root_str)],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .contains("CORS: not set (LMS_FRONTEND_ORIGINS is empty)")
    );
}

#[test]
fn malformed_setting_fails_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Uuid::new_v4().to_string();
    let output = run(
        dir.path(),
        &["token", "--role", "admin", "--sub", &sub],
        &[("LMS_BIND", "nonsense")],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("LMS_BIND"), "{err}");
}

#[test]
fn production_without_secrets_refuses_to_start_and_prints_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &["migrate"],
        &[
            ("LMS_ENV", "production"),
            ("DREAM_CENTRAL_STORAGE_PASSWORD", "admin"),
        ],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    for variable in [
        "LMS_JWT_SECRET",
        "DREAM_CENTRAL_STORAGE_EMAIL",
        "DREAM_CENTRAL_STORAGE_PASSWORD",
        "DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET",
    ] {
        assert!(err.contains(variable), "{variable} not named: {err}");
    }
    assert!(!err.contains("admin@admin.com"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created on refusal"
    );
}

#[actix_web::test]
async fn migrate_creates_the_sqlite_file_and_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = "sqlite://nested/dir/lms.db?mode=rwc";
    for run_number in 1..=2 {
        let output = run(dir.path(), &["migrate"], &[("DATABASE_URL", database_url)]);
        assert!(
            output.status.success(),
            "run {run_number}: {}",
            stderr(&output)
        );
    }
    let file = dir.path().join("nested/dir/lms.db");
    assert!(file.exists());

    let url = format!("sqlite://{}?mode=ro", file.display());
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let manager = sea_orm_migration_tables(&db).await;
    assert!(
        manager.contains(&"webhook_event_logs".to_owned()),
        "{manager:?}"
    );
    assert!(manager.contains(&"leader_locks".to_owned()), "{manager:?}");
    assert!(
        manager.contains(&"seaql_migrations".to_owned()),
        "{manager:?}"
    );
}

async fn sea_orm_migration_tables(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT name FROM sqlite_master WHERE type = 'table'",
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get::<String>("", "name").unwrap())
    .collect()
}

#[actix_web::test]
async fn migrate_applies_the_schema_on_postgres() {
    let Some(database) = TestDatabase::open_empty(Engine::Postgres).await else {
        return;
    };
    assert!(database.table_names().await.is_empty());
    let dir = tempfile::tempdir().unwrap();
    for run_number in 1..=2 {
        let output = run(dir.path(), &["migrate"], &[("DATABASE_URL", &database.url)]);
        assert!(
            output.status.success(),
            "run {run_number}: {}",
            stderr(&output)
        );
    }
    assert_eq!(
        database.table_names().await,
        [
            "activities",
            "leader_locks",
            "seaql_migrations",
            "teacher_materials",
            "teacher_storage_quotas",
            "webhook_event_logs"
        ]
    );
}

#[test]
fn migrate_reports_a_failed_login_without_the_password() {
    if postgres_skipped() {
        return;
    }
    // A role that does not exist fails at once (a refused TCP connection would be retried
    // until the connect timeout, as when the database is still starting).
    let mut url = url::Url::parse(&postgres_admin_url()).unwrap();
    url.set_username("lms_no_such_role").unwrap();
    url.set_password(Some("very-secret-pw")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["migrate"], &[("DATABASE_URL", url.as_str())]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(err.contains("lms_no_such_role:***@"), "{err}");
    assert!(!err.contains("very-secret-pw"), "{err}");
}

/// `lms-api` with no subcommand (so `serve`) in `dir` on a free port, with `env` on top of the
/// shared fake DCS and `RUST_LOG=info`: the child, its log, the bound address and the log
/// lines read up to the "listening" line.
fn spawn_serve(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
    String,
    String,
) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = Command::new(BINARY)
        .current_dir(dir)
        .env_clear()
        .env("LMS_BIND", "127.0.0.1:0")
        .env(
            "DREAM_CENTRAL_STORAGE_URL",
            crate::support::shared_dcs_url(),
        )
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lms-api");
    let mut log = BufReader::new(child.stderr.take().unwrap());
    // The server logs its bound address; port 0 lets the OS pick a free one.
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        if log.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("lms-api exited before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_owned();
        }
    };
    (child, log, addr, seen)
}

#[test]
fn serve_is_the_default_command_and_drains_on_sigterm() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut log, addr, seen) = spawn_serve(dir.path(), &[]);

    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""database":{"ok":true"#), "{response}");
    assert!(response.contains(r#""dcs":{"ok":true"#), "{response}");
    // The default database was created under the working directory.
    assert!(dir.path().join("data/lms.db").exists());

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let mut rest = String::new();
    log.read_to_string(&mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}:\n{seen}{rest}");
    assert!(rest.contains("shutdown signal received"), "{rest}");
    assert!(rest.contains("stopped"), "{rest}");
    // Log lines carry no terminal colour codes when stderr is not a terminal.
    assert!(!seen.contains('\u{1b}'), "{seen}");
}

/// SIGTERM while uploads are in flight: an upload whose body keeps arriving completes (201,
/// stored, counted), one whose client stalls ends with 408 and leaves nothing, and the process
/// exits cleanly once both are done.
#[test]
fn sigterm_lets_uploads_in_flight_finish_or_fail_cleanly() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use crate::materials::{file, form, form_content_type, png_of, token_for};

    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut log, addr, seen) = spawn_serve(
        dir.path(),
        &[
            ("LMS_JWT_SECRET", crate::support::TEST_JWT_SECRET),
            ("LMS_BODY_READ_TIMEOUT", "1"),
        ],
    );
    let teacher = uuid::Uuid::new_v4();
    let token = token_for(teacher, lms_api::auth::Role::Teacher);
    let body = form(&[file("big.png", "image/png", &png_of(8 << 20))]);
    let head = format!(
        "POST /api/v1/teachers/materials/upload HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {token}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        form_content_type(),
        body.len()
    );
    let half = body.len() / 2;
    let mut finishing = TcpStream::connect(&addr).unwrap();
    finishing.write_all(head.as_bytes()).unwrap();
    finishing.write_all(&body[..half]).unwrap();
    let mut stalling = TcpStream::connect(&addr).unwrap();
    stalling.write_all(head.as_bytes()).unwrap();
    stalling.write_all(&body[..half]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    // New connections are refused once the server stops accepting.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while TcpStream::connect(&addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting 10 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    finishing.write_all(&body[half..]).unwrap();
    let mut answer = String::new();
    finishing.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer:.400}");
    let mut stalled = String::new();
    stalling.read_to_string(&mut stalled).unwrap();
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled:.400}");

    let mut rest = String::new();
    log.read_to_string(&mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}:\n{seen}{rest}");
    // One object stored (the finished upload), under the teacher's folder.
    let images = dir
        .path()
        .join("data/objects/teachers")
        .join(teacher.to_string())
        .join("images");
    let stored: Vec<_> = std::fs::read_dir(&images)
        .map(|entries| entries.filter_map(Result::ok).collect())
        .unwrap_or_default();
    assert_eq!(stored.len(), 1, "{stored:?}");
}
