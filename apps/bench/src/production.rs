//! The production backends on loopback, for a benchmark run of the release binary: a database
//! of its own on the machine's PostgreSQL server, a private `redis-server` (so the binary's
//! fixed cache namespace is not shared with anything else), and s3s-fs (a SigV4-verifying S3
//! server) holding the data set's book files where DCS keeps them,
//! `{publisher}/books/{book}/{path}` in the `publishers` bucket. Everything is removed on drop.

use std::process::Command;

use cache::testing::RedisServer;
use dcs_mock::NewBook;
use storage::testing::{ACCESS, S3sFs, SECRET};
use storage::{ObjectStore, PutOptions, S3Store, bytes_body};

/// `MINIO_BUCKET_NAME`'s default: DCS's book content.
const CONTENT_BUCKET: &str = "publishers";

/// The running backends.
#[derive(Debug)]
pub struct ProductionBackends {
    s3: S3sFs,
    redis: RedisServer,
    /// The server's URL the database was created through (and is dropped through).
    admin_url: String,
    database: String,
}

impl ProductionBackends {
    /// Creates the database `soak_{pid}` through `postgres_admin_url` (a URL of any database on
    /// the server, e.g. `postgres://postgres@127.0.0.1:5432/test`), starts redis-server and
    /// s3s-fs.
    pub async fn start(postgres_admin_url: &str) -> Result<Self, String> {
        let database = format!("soak_{}", std::process::id());
        psql(
            postgres_admin_url,
            &[
                &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
                &format!("CREATE DATABASE {database}"),
            ],
        )?;
        Ok(Self {
            s3: S3sFs::start(),
            redis: RedisServer::start().await,
            admin_url: postgres_admin_url.to_owned(),
            database,
        })
    }

    /// The environment of an `lms-api` on these backends. Assets are proxied (`ASSET_DELIVERY=
    /// proxy`), so media reads go through lms-api's ranged S3 reads rather than straight to S3.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "DATABASE_URL",
                database_url(&self.admin_url, &self.database),
            ),
            ("REDIS_URL", self.redis.url()),
            ("STORAGE_BACKEND", "s3".to_owned()),
            ("MINIO_ENDPOINT", self.s3.endpoint()),
            ("MINIO_ACCESS_KEY", ACCESS.to_owned()),
            ("MINIO_SECRET_KEY", SECRET.to_owned()),
            ("ASSET_DELIVERY", "proxy".to_owned()),
        ]
    }

    /// Puts every file of `books` into the content bucket (which `lms-api storage-init` has
    /// created), as DCS's upload does.
    pub async fn seed_books(&self, books: &[NewBook]) -> Result<usize, String> {
        let store = S3Store::new(self.s3.config(CONTENT_BUCKET)).map_err(|e| e.to_string())?;
        let mut files = 0;
        for book in books {
            for (path, bytes) in &book.files {
                let key = format!("{}/books/{}/{path}", book.publisher, book.book_name);
                store
                    .put(&key, bytes_body(bytes.clone()), PutOptions::default())
                    .await
                    .map_err(|e| format!("put {key}: {e}"))?;
                files += 1;
            }
        }
        Ok(files)
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        format!(
            "PostgreSQL (database `{}` on the local server), Redis (a private redis-server), \
             S3 (s3s-fs 0.14.1, SigV4-verifying), proxy asset delivery",
            self.database
        )
    }
}

impl Drop for ProductionBackends {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin_url,
            &[&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            )],
        ) {
            eprintln!("could not drop the benchmark database: {e}");
        }
    }
}

/// Runs each statement on its own (`CREATE DATABASE` cannot run in a transaction block).
fn psql(url: &str, statements: &[&str]) -> Result<(), String> {
    let output = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q"])
        .args(statements.iter().flat_map(|statement| ["-c", statement]))
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "psql: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `admin_url` with its database replaced by `database`; the rest (credentials, host, a query
/// such as `?sslmode=disable`) stays as it is.
fn database_url(admin_url: &str, database: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(database);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_url_keeps_everything_but_the_database() {
        assert_eq!(
            database_url("postgres://lms:secret@127.0.0.1:5432/postgres", "soak_1"),
            "postgres://lms:secret@127.0.0.1:5432/soak_1"
        );
        assert_eq!(
            database_url(
                "postgres://lms@localhost/lms_test?sslmode=disable",
                "soak_2"
            ),
            "postgres://lms@localhost/soak_2?sslmode=disable"
        );
    }
}
