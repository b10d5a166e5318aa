use std::process::ExitCode;

fn main() -> ExitCode {
    lms_api::cli::run()
}
