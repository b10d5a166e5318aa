//! Signed lms-api asset URLs for the `proxy` delivery mode.
//!
//! A browser fetches `<img src>` and `<audio src>` without an `Authorization` header, so a
//! proxy URL carries its own proof: `?expires=E&signature=HEX`, an HMAC-SHA256 over the part of
//! the path after `/books/` (`{id}/assets/{path}`) and the expiry. Signing that part, not the
//! whole URL, keeps URLs valid behind a reverse proxy that mounts the API under a prefix; and
//! it is signed in one canonical spelling (decoded, then every byte but unreserved ones and `/`
//! escaped), so a proxy that re-encodes the path (nginx's `proxy_pass` with a URI turns `%28`
//! into `(`; others write lowercase hex) does not break it. Expiries follow the presign window
//! ([`storage::PresignWindow`]): the same asset gets the same URL within a window, so browser
//! caches work, and every URL handed out lives at least `PRESIGN_MIN_REMAINING` seconds.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use sha2::Sha256;
use storage::{Clock, PresignWindow};

use crate::asset_path::{BookAssetPath, BookRef};
use crate::linker::{AssetLinker, LinkError, ProxyLinker};

type HmacSha256 = Hmac<Sha256>;

/// Where the signed part of a path starts.
const SIGNED_FROM: &str = "/books/";

/// Bytes escaped in the canonical spelling of the signed part: all but RFC 3986's unreserved
/// characters and `/`.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The signed part in its one canonical spelling, however the path was percent-encoded. Two
/// spellings share it only when they decode to the same bytes, so the same asset.
fn canonical(signed_part: &str) -> String {
    let bytes: Vec<u8> = percent_decode_str(signed_part).collect();
    percent_encode(&bytes, ESCAPED).to_string()
}

/// Signs and checks proxy asset URLs.
pub struct LinkSigner {
    mac: HmacSha256,
    window: PresignWindow,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkSigner")
            .field("window", &self.window)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a signed asset URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkRejected {
    #[error("the URL has no valid expires/signature parameters")]
    Malformed,
    #[error("the URL has expired")]
    Expired,
    #[error("the URL's signature does not match")]
    BadSignature,
}

impl LinkSigner {
    /// A signer with `key` (derive it from a server secret; at least 32 bytes).
    pub fn new(key: &[u8], window: PresignWindow, clock: Arc<dyn Clock>) -> Self {
        Self {
            mac: HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"),
            window,
            clock,
        }
    }

    fn mac_over(&self, signed_part: &str, expires: u64) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(canonical(signed_part).as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    fn signature(&self, signed_part: &str, expires: u64) -> String {
        hex::encode(self.mac_over(signed_part, expires).finalize().into_bytes())
    }

    /// The path from the `/books/` that starts `{id}/assets/` or `{id}/media/` (a proxy prefix
    /// may hold `/books/` too).
    fn signed_part(path: &str) -> Option<&str> {
        path.match_indices(SIGNED_FROM)
            .map(|(at, _)| &path[at + SIGNED_FROM.len()..])
            .find(|rest| {
                let (id, route) = rest.split_once('/').unwrap_or((rest, ""));
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && (route.starts_with("assets/") || route.starts_with("media/"))
            })
    }

    /// `url` (an lms-api asset URL with no query) with its expiry and signature appended.
    pub fn sign_url(&self, url: &str) -> Option<String> {
        let path_start = url.find("://").map_or(0, |i| i + 3);
        let path = url[path_start..]
            .find('/')
            .map_or("", |i| &url[path_start + i..]);
        let signed_part = Self::signed_part(path)?;
        let expires = self.window.signing(self.clock.now_unix()).expires_at();
        let signature = self.signature(signed_part, expires);
        Some(format!("{url}?expires={expires}&signature={signature}"))
    }

    /// Checks a request for `path` (as received, percent-encoded) with the given query.
    pub fn verify(&self, path: &str, query: &str) -> Result<(), LinkRejected> {
        let mut expires = None;
        let mut signature = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", value)) => expires = value.parse::<u64>().ok(),
                Some(("signature", value)) => signature = Some(value),
                _ => {}
            }
        }
        let (Some(expires), Some(signature), Some(signed_part)) =
            (expires, signature, Self::signed_part(path))
        else {
            return Err(LinkRejected::Malformed);
        };
        if expires <= self.clock.now_unix() {
            return Err(LinkRejected::Expired);
        }
        let given = hex::decode(signature).map_err(|_| LinkRejected::BadSignature)?;
        // Constant-time comparison through the MAC's own verifier.
        self.mac_over(signed_part, expires)
            .verify_slice(&given)
            .map_err(|_| LinkRejected::BadSignature)
    }
}

/// `ASSET_DELIVERY=proxy` with URLs a browser can fetch on its own: [`ProxyLinker`]'s URLs,
/// signed by a [`LinkSigner`].
#[derive(Debug, Clone)]
pub struct SignedProxyLinker {
    proxy: ProxyLinker,
    signer: Arc<LinkSigner>,
}

impl SignedProxyLinker {
    pub fn new(proxy: ProxyLinker, signer: Arc<LinkSigner>) -> Self {
        Self { proxy, signer }
    }
}

#[async_trait]
impl AssetLinker for SignedProxyLinker {
    async fn link(
        &self,
        book: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError> {
        Ok(paths
            .iter()
            .map(|path| self.signer.sign_url(&self.proxy.url(book, path)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use storage::ManualClock;

    use super::*;

    fn signer(clock: Arc<ManualClock>) -> LinkSigner {
        LinkSigner::new(
            b"0123456789abcdef0123456789abcdef",
            PresignWindow::new(3600, 2700).unwrap(),
            clock,
        )
    }

    fn flip_last(s: &str) -> String {
        let last = if s.ends_with('0') { '1' } else { '0' };
        format!("{}{last}", &s[..s.len() - 1])
    }

    fn split(url: &str) -> (String, String) {
        let without_origin = &url["http://lms.test".len()..];
        let (path, query) = without_origin.split_once('?').unwrap();
        (path.to_owned(), query.to_owned())
    }

    #[test]
    fn signed_urls_verify_until_they_expire() {
        let clock = ManualClock::new(1_800_000_000);
        let signer = signer(clock.clone());
        let url = signer
            .sign_url("http://lms.test/api/v1/books/1/assets/images/M1/a%20b.png")
            .unwrap();
        let (path, query) = split(&url);
        assert_eq!(signer.verify(&path, &query), Ok(()));
        // Behind a proxy prefix the same URL still verifies.
        assert_eq!(signer.verify(&format!("/lms{path}"), &query), Ok(()));

        // Deterministic within the window.
        clock.advance(60);
        assert_eq!(
            signer.sign_url("http://lms.test/api/v1/books/1/assets/images/M1/a%20b.png"),
            Some(url.clone())
        );
        clock.advance(4000);
        assert_eq!(signer.verify(&path, &query), Err(LinkRejected::Expired));
    }

    #[test]
    fn a_proxy_that_spells_the_path_another_way_does_not_break_the_signature() {
        let signer = signer(ManualClock::new(1_800_000_000));
        let url = signer
            .sign_url("http://lms.test/books/api/v1/books/1/assets/M1/Track%20%281%29%20%C3%A9.png")
            .unwrap();
        let (path, query) = split(&url);
        for spelling in [
            path.clone(),
            // nginx's proxy_pass with a URI: decoded, then only some bytes escaped again.
            path.replace("%28", "(").replace("%29", ")"),
            path.replace("%C3%A9", "%c3%a9"),
            path.replace("M1", "%4D1"),
            format!("/lms{}", &path["/books".len()..]),
        ] {
            assert_eq!(signer.verify(&spelling, &query), Ok(()), "{spelling}");
        }
        // Another spelling of another asset is still another asset.
        for other in [
            path.replace("%281%29", "%282%29"),
            path.replace("%20%281", "%2F%281"),
        ] {
            assert_eq!(
                signer.verify(&other, &query),
                Err(LinkRejected::BadSignature),
                "{other}"
            );
        }
    }

    #[test]
    fn tampering_is_refused() {
        let clock = ManualClock::new(1_800_000_000);
        let signer = signer(clock);
        let url = signer
            .sign_url("http://lms.test/api/v1/books/1/media/audio/01.mp3")
            .unwrap();
        let (path, query) = split(&url);
        // Another asset, another book, a changed expiry or signature.
        for (p, q) in [
            (path.replace("01.mp3", "02.mp3"), query.clone()),
            (path.replace("/books/1/", "/books/2/"), query.clone()),
            (path.clone(), query.replace("expires=18", "expires=19")),
            (path.clone(), flip_last(&query)),
        ] {
            assert_ne!(signer.verify(&p, &q), Ok(()), "{p}?{q}");
        }
        assert_eq!(
            signer.verify(&path, "expires=1"),
            Err(LinkRejected::Malformed)
        );
        // A different key refuses it.
        let other = LinkSigner::new(
            b"another-key-another-key-another-k",
            PresignWindow::new(3600, 2700).unwrap(),
            ManualClock::new(1_800_000_000),
        );
        assert_eq!(other.verify(&path, &query), Err(LinkRejected::BadSignature));
    }
}
