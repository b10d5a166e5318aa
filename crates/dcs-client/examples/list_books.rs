//! Lists publishers and books of a DCS, with each book's file count.
//!
//! ```text
//! DCS_URL=http://127.0.0.1:8081 DCS_EMAIL=admin@admin.com DCS_PASSWORD=admin \
//!   cargo run -p dcs-client --example list_books
//! ```
//!
//! `DCS_API_KEY` may be set instead of (or besides) email and password; with a key only,
//! file counts are skipped (DCS does not accept keys on `/storage/*`).

use std::process::ExitCode;
use std::sync::Arc;

use dcs_client::{Credentials, DcsApi, DcsClient, DcsConfig, DcsError};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

fn credentials() -> Result<Credentials, DcsError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let creds = match (env("DCS_EMAIL"), env("DCS_PASSWORD"), env("DCS_API_KEY")) {
        (Some(email), Some(password), key) => {
            let c = Credentials::password(email, password);
            match key {
                Some(k) => c.with_api_key(k),
                None => c,
            }
        }
        (_, _, Some(key)) => Credentials::api_key(key),
        _ => {
            return Err(DcsError::InvalidConfig {
                message: "set DCS_EMAIL and DCS_PASSWORD (or DCS_API_KEY)".to_owned(),
            });
        }
    };
    Ok(creds)
}

async fn run() -> Result<(), DcsError> {
    let url = std::env::var("DCS_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".to_owned());
    let config = DcsConfig::new(url, credentials()?);
    let dcs: Arc<dyn DcsApi> = Arc::new(DcsClient::new(config)?);

    let publishers = dcs.list_publishers().await?;
    println!("{} active publisher(s)", publishers.len());
    for p in &publishers {
        println!("  [{}] {} ({})", p.id, p.name, p.status);
    }

    let books = dcs.list_books(None).await?;
    println!("{} book(s)", books.len());
    for b in &books {
        let publisher = b.publisher.as_deref().unwrap_or("?");
        let files = if b.is_archived() {
            "archived".to_owned()
        } else {
            match dcs.book_contents(publisher, &b.book_name).await {
                Ok(files) => format!("{} files", files.len()),
                Err(e) if e.code() == "dcs_api_key_unsupported" => {
                    "files: needs a login".to_owned()
                }
                Err(e) => return Err(e),
            }
        };
        println!(
            "  [{}] {} / {} — {} ({}, {})",
            b.id,
            publisher,
            b.book_name,
            b.book_title.as_deref().unwrap_or("(untitled)"),
            b.status,
            files
        );
    }
    Ok(())
}
