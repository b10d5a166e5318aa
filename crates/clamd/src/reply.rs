//! clamd's answers: `PONG`, a version line, or a scan result such as `stream: OK`.

use crate::{ClamdError, Verdict};

/// What clamd answers when a stream passes `StreamMaxLength`.
const SIZE_LIMIT: &str = "INSTREAM size limit exceeded";

/// Reads a scan reply (the `\0` or newline already stripped or not).
pub(crate) fn parse_scan_reply(reply: &str) -> Result<Verdict, ClamdError> {
    let line = trim(reply);
    if let Some(message) = line.strip_suffix(" ERROR") {
        let message = message.trim_end_matches('.').trim();
        if message.starts_with(SIZE_LIMIT) {
            return Err(ClamdError::SizeLimitExceeded);
        }
        let message = message.strip_prefix("stream:").unwrap_or(message).trim();
        return Err(ClamdError::Scanner(message.to_owned()));
    }
    let Some(result) = line.strip_prefix("stream:") else {
        return Err(protocol(line));
    };
    let result = result.trim();
    if result == "OK" {
        return Ok(Verdict::Clean);
    }
    match result.strip_suffix(" FOUND").map(str::trim) {
        Some(signature) if !signature.is_empty() => Ok(Verdict::Infected {
            signature: signature.to_owned(),
        }),
        _ => Err(protocol(line)),
    }
}

/// Reads the answer to `zPING`.
pub(crate) fn parse_pong(reply: &str) -> Result<(), ClamdError> {
    match trim(reply) {
        "PONG" => Ok(()),
        other => Err(error_or_protocol(other)),
    }
}

/// Reads the answer to `zVERSION`, e.g. `ClamAV 1.4.6/27000/Tue Dec  1 09:00:00 2026`.
pub(crate) fn parse_version(reply: &str) -> Result<String, ClamdError> {
    match trim(reply) {
        v if v.starts_with("ClamAV ") => Ok(v.to_owned()),
        other => Err(error_or_protocol(other)),
    }
}

/// The reply an INSTREAM broken off by clamd carries, as the error it states; `None` when it
/// states none (or claims a verdict, which a broken-off stream cannot have).
pub(crate) fn error_in_reply(reply: &str) -> Option<ClamdError> {
    parse_scan_reply(reply)
        .err()
        .filter(|e| matches!(e, ClamdError::SizeLimitExceeded | ClamdError::Scanner(_)))
}

fn error_or_protocol(line: &str) -> ClamdError {
    match line.strip_suffix(" ERROR") {
        Some(message) => ClamdError::Scanner(message.trim().to_owned()),
        None => protocol(line),
    }
}

fn trim(reply: &str) -> &str {
    reply.trim_end_matches(['\0', '\n', '\r']).trim()
}

fn protocol(line: &str) -> ClamdError {
    let mut shown: String = line.chars().take(200).collect();
    if shown.len() < line.len() {
        shown.push('…');
    }
    ClamdError::Protocol(format!("unexpected reply from clamd: {shown:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infected(name: &str) -> Verdict {
        Verdict::Infected {
            signature: name.to_owned(),
        }
    }

    #[test]
    fn clean() {
        assert_eq!(parse_scan_reply("stream: OK\0").unwrap(), Verdict::Clean);
        assert_eq!(parse_scan_reply("stream: OK").unwrap(), Verdict::Clean);
        assert_eq!(parse_scan_reply("stream: OK\n").unwrap(), Verdict::Clean);
    }

    #[test]
    fn found() {
        assert_eq!(
            parse_scan_reply("stream: Dream.Test.EICAR FOUND\0").unwrap(),
            infected("Dream.Test.EICAR")
        );
        assert_eq!(
            parse_scan_reply("stream: Win.Test.EICAR_HDB-1 FOUND").unwrap(),
            infected("Win.Test.EICAR_HDB-1")
        );
        assert_eq!(
            parse_scan_reply("stream: Dream.Test.EICAR.UNOFFICIAL FOUND\0").unwrap(),
            infected("Dream.Test.EICAR.UNOFFICIAL")
        );
    }

    #[test]
    fn size_limit() {
        assert!(matches!(
            parse_scan_reply("INSTREAM size limit exceeded. ERROR\0"),
            Err(ClamdError::SizeLimitExceeded)
        ));
        assert!(matches!(
            error_in_reply("INSTREAM size limit exceeded. ERROR\0"),
            Some(ClamdError::SizeLimitExceeded)
        ));
    }

    #[test]
    fn scanner_errors() {
        match parse_scan_reply("stream: Can't allocate memory ERROR\0") {
            Err(ClamdError::Scanner(m)) => assert_eq!(m, "Can't allocate memory"),
            other => panic!("{other:?}"),
        }
        match parse_scan_reply("Error processing command. ERROR\0") {
            Err(ClamdError::Scanner(m)) => assert_eq!(m, "Error processing command"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error_in_reply("stream: Can't allocate memory ERROR"),
            Some(ClamdError::Scanner(_))
        ));
    }

    #[test]
    fn not_understood() {
        for reply in [
            "",
            "\0",
            "UNKNOWN COMMAND\0",
            "COMMAND READ TIMED OUT\0",
            "stream: FOUND\0",
            "stream:  FOUND",
            "stream: maybe",
            "OK",
            "PONG\0",
        ] {
            assert!(
                matches!(parse_scan_reply(reply), Err(ClamdError::Protocol(_))),
                "{reply:?}"
            );
        }
        assert!(error_in_reply("stream: OK\0").is_none());
        assert!(error_in_reply("stream: X FOUND\0").is_none());
        assert!(error_in_reply("garbage").is_none());
    }

    #[test]
    fn long_garbage_is_cut_in_the_message() {
        let reply = "x".repeat(10_000);
        let ClamdError::Protocol(message) = parse_scan_reply(&reply).unwrap_err() else {
            panic!()
        };
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn pong_and_version() {
        parse_pong("PONG\0").unwrap();
        assert!(matches!(parse_pong("PANG\0"), Err(ClamdError::Protocol(_))));
        assert!(matches!(
            parse_pong("Something failed. ERROR\0"),
            Err(ClamdError::Scanner(_))
        ));
        assert_eq!(
            parse_version("ClamAV 1.4.6/27000/Tue Dec  1 09:00:00 2026\0").unwrap(),
            "ClamAV 1.4.6/27000/Tue Dec  1 09:00:00 2026"
        );
        assert_eq!(parse_version("ClamAV 1.4.6\0").unwrap(), "ClamAV 1.4.6");
        assert!(matches!(
            parse_version("UNKNOWN COMMAND\0"),
            Err(ClamdError::Protocol(_))
        ));
    }
}
