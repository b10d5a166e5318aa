//! Smoke test of the `dcs-mock` binary as the run command starts it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Http;
use http::StatusCode;

/// Kills the child if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on a free port and returns it with the URL it prints.
fn spawn(extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dcs-mock"))
        .args(["--port", "0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let running = Running(child);
    let line = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("the binary prints its URL");
    let url = line
        .trim()
        .strip_prefix("dcs-mock listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (running, url)
}

#[tokio::test]
async fn the_binary_serves_the_sample_books_and_stops_on_sigterm() {
    let books = dcs_mock::default_books_dir();
    let (mut running, url) = spawn(&["--books", books.to_str().expect("UTF-8 path")]);
    let http = Http::default();
    let token = http.login(&url).await;
    let books = http.get(&format!("{url}/books/"), &token).await;
    assert_eq!(books.status, StatusCode::OK);
    let books = books.json();
    assert_eq!(books[0]["book_name"], "FLOWDEMO");
    assert_eq!(books[0]["publisher"], "Dream Press");

    // The control API is there for tests that run the binary.
    let stats = http
        .send(http::Method::GET, &format!("{url}/_mock/stats"), &[], None)
        .await
        .json();
    assert_eq!(stats["login_count"], 1);

    #[cfg(unix)]
    {
        let status = Command::new("kill")
            .args(["-TERM", &running.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || running.0.wait())
            .await
            .expect("join")
            .expect("wait");
        assert!(exit.success(), "clean exit after SIGTERM: {exit}");
    }
    #[cfg(not(unix))]
    {
        running.0.kill().expect("kill");
    }
}

#[test]
fn a_missing_books_directory_fails_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_dcs-mock"))
        .args(["--port", "0", "--books", "/nonexistent/dcs-mock-books"])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/dcs-mock-books"), "{stderr}");
    assert!(output.stdout.is_empty());
}
