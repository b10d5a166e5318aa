//! The [`VirusScanner`] port over ClamAV's daemon (`CLAMD_ADDR`).

use async_trait::async_trait;
use clamd::{Clamd, ClamdError, InStream, Verdict};

use crate::ports::{ScanError, ScanSession, ScanVerdict, VirusScanner};

/// Scans with clamd's INSTREAM command, one connection per upload.
#[derive(Debug, Clone)]
pub struct ClamdScanner {
    clamd: Clamd,
}

impl ClamdScanner {
    pub fn new(clamd: Clamd) -> Self {
        Self { clamd }
    }
}

fn scan_error(error: ClamdError) -> ScanError {
    match error {
        ClamdError::SizeLimitExceeded => ScanError(
            "clamd refused the stream as too long: raise StreamMaxLength in clamd.conf to at \
             least MATERIAL_MAX_BYTES"
                .into(),
        ),
        other => ScanError(other.to_string()),
    }
}

#[async_trait]
impl VirusScanner for ClamdScanner {
    async fn start(&self) -> Result<Box<dyn ScanSession>, ScanError> {
        let stream = self.clamd.instream().await.map_err(scan_error)?;
        Ok(Box::new(ClamdSession(stream)))
    }

    async fn ready(&self) -> Result<(), ScanError> {
        self.clamd.ping().await.map_err(scan_error)
    }
}

struct ClamdSession(InStream);

#[async_trait]
impl ScanSession for ClamdSession {
    async fn feed(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        self.0.send(chunk).await.map_err(scan_error)
    }

    async fn finish(self: Box<Self>) -> Result<ScanVerdict, ScanError> {
        match self.0.finish().await.map_err(scan_error)? {
            Verdict::Clean => Ok(ScanVerdict::Clean),
            Verdict::Infected { signature } => Ok(ScanVerdict::Infected { signature }),
        }
    }
}
