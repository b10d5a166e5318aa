//! Teacher materials: `CLAMD_ADDR`, `MATERIAL_MAX_BYTES`, `TEACHER_QUOTA_BYTES`.

use std::path::PathBuf;

use clamd::ClamdAddr;

use super::reader::Reader;

/// Parses `CLAMD_ADDR`: `host:port`, a socket path, or `unix:<path>`.
fn parse(value: &str) -> Result<ClamdAddr, String> {
    if value.starts_with('/') || value.starts_with("./") || value.starts_with("../") {
        return Ok(ClamdAddr::Unix(PathBuf::from(value)));
    }
    if let Some(path) = value.strip_prefix("unix:") {
        return Ok(ClamdAddr::Unix(PathBuf::from(path)));
    }
    let invalid = || {
        format!(
            "{value:?} is neither host:port nor a unix socket path (e.g. 127.0.0.1:3310 or /run/clamav/clamd.ctl)"
        )
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if host.is_empty() || port == 0 {
        return Err(invalid());
    }
    Ok(ClamdAddr::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// `CLAMD_ADDR` (optional).
pub(super) fn read_clamd_addr(env: &mut Reader<'_>) -> Option<ClamdAddr> {
    env.value("CLAMD_ADDR")
        .and_then(|value| match parse(&value) {
            Ok(addr) => Some(addr),
            Err(message) => {
                env.problem("CLAMD_ADDR", message);
                None
            }
        })
}
