//! Teacher materials: `CLAMD_ADDR`, `MATERIAL_MAX_BYTES`, `TEACHER_QUOTA_BYTES`.

use std::path::PathBuf;

use super::reader::Reader;

/// Where the ClamAV daemon listens (`CLAMD_ADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    /// `host:port`.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Path of a unix domain socket.
    Unix(PathBuf),
}

impl ClamdAddr {
    fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with('/') || value.starts_with("./") || value.starts_with("../") {
            return Ok(Self::Unix(PathBuf::from(value)));
        }
        if let Some(path) = value.strip_prefix("unix:") {
            return Ok(Self::Unix(PathBuf::from(path)));
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
        Ok(Self::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

/// `CLAMD_ADDR` (optional).
pub(super) fn read_clamd_addr(env: &mut Reader<'_>) -> Option<ClamdAddr> {
    env.value("CLAMD_ADDR")
        .and_then(|value| match ClamdAddr::parse(&value) {
            Ok(addr) => Some(addr),
            Err(message) => {
                env.problem("CLAMD_ADDR", message);
                None
            }
        })
}
