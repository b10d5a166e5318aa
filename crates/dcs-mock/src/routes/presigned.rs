//! The object server that presigned URLs point at (DCS points them at MinIO).
//!
//! URLs carry the same `X-Amz-*` query names as MinIO's so clients can read the expiry from
//! `X-Amz-Date` + `X-Amz-Expires`; the signature is an HMAC the mock checks itself.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use http::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

use super::storage::file_response;
use crate::app::App;
use crate::fastapi::Query;

/// The bucket DCS keeps book content in.
const BUCKET: &str = "publishers";
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// S3's URI encoding: everything but unreserved characters.
const S3_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn sign(secret: &str, bucket: &str, key: &str, amz_date: &str, expires: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(format!("GET\n/{bucket}/{key}\n{amz_date}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Why S3 would refuse a presigned GET: (code, message).
#[derive(Debug, PartialEq, Eq)]
struct Refusal(&'static str, Option<&'static str>);

/// Checks the signature, then the expiry, as S3 does.
fn check_presigned(
    secret: &str,
    bucket: &str,
    key: &str,
    query: &Query,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let (Some(amz_date), Some(expires), Some(signature)) = (
        query.get("X-Amz-Date"),
        query
            .get("X-Amz-Expires")
            .and_then(|e| e.parse::<i64>().ok()),
        query.get("X-Amz-Signature"),
    ) else {
        return Err(Refusal("AccessDenied", Some("Access Denied.")));
    };
    if sign(secret, bucket, key, amz_date, expires) != signature {
        return Err(Refusal("SignatureDoesNotMatch", None));
    }
    let signed_at = NaiveDateTime::parse_from_str(amz_date, AMZ_DATE_FORMAT).map(|d| d.and_utc());
    match signed_at {
        Ok(at) if now <= at + chrono::Duration::seconds(expires) => Ok(()),
        _ => Err(Refusal("AccessDenied", Some("Request has expired"))),
    }
}

/// A URL for `key` in the `publishers` bucket, valid for `expires` seconds.
pub(super) fn presigned_url(app: &App, key: &str, expires: i64) -> String {
    let now = Utc::now();
    let amz_date = now.format(AMZ_DATE_FORMAT).to_string();
    let day = now.format("%Y%m%d");
    let encoded_key: Vec<String> = key
        .split('/')
        .map(|s| utf8_percent_encode(s, S3_SEGMENT).to_string())
        .collect();
    let signature = sign(&app.settings.jwt_secret, BUCKET, key, &amz_date, expires);
    format!(
        "{}/_presigned/{BUCKET}/{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=dcs-mock%2F{day}%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date={amz_date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}",
        app.settings.public_base_url,
        encoded_key.join("/"),
    )
}

fn s3_error(status: StatusCode, code: &str, message: Option<&str>) -> Response {
    let message = message
        .map(|m| format!("<Message>{m}</Message>"))
        .unwrap_or_default();
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>{message}</Error>"#
    );
    file_response(
        status,
        Bytes::from(body),
        &[("content-type", "application/xml")],
    )
}

/// `GET /_presigned/{bucket}/{key}`: no bearer needed, only a valid, unexpired signature.
pub(super) async fn fetch(
    State(app): State<App>,
    Path((bucket, key)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = Query::parse(query.as_deref());
    if let Err(Refusal(code, message)) =
        check_presigned(&app.settings.jwt_secret, &bucket, &key, &query, Utc::now())
    {
        return s3_error(StatusCode::FORBIDDEN, code, message);
    }
    let object = (bucket == BUCKET)
        .then(|| app.lock().objects.get(&key).cloned())
        .flatten();
    let Some(object) = object else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            Some("The specified key does not exist."),
        );
    };
    let Ok(bytes) = object.read_all().await else {
        return s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", None);
    };
    let last_modified = object
        .last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    file_response(
        StatusCode::OK,
        bytes,
        &[
            ("content-length", &object.size.to_string()),
            ("content-type", "application/octet-stream"),
            ("etag", &object.etag()),
            ("last-modified", &last_modified),
            ("accept-ranges", "bytes"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn query(date: &str, expires: i64, signature: &str) -> Query {
        Query::parse(Some(&format!(
            "X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-Signature={signature}"
        )))
    }

    #[test]
    fn presigned_requests_expire_and_detect_tampering() {
        let signed_at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 32, 56).unwrap();
        let date = signed_at.format(AMZ_DATE_FORMAT).to_string();
        let key = "Dream Press/books/FLOWDEMO/audio/01.mp3";
        let signature = sign("secret", BUCKET, key, &date, 600);
        let valid = query(&date, 600, &signature);
        let within = signed_at + chrono::Duration::seconds(600);
        assert_eq!(
            check_presigned("secret", BUCKET, key, &valid, within),
            Ok(())
        );
        let after = within + chrono::Duration::seconds(1);
        assert_eq!(
            check_presigned("secret", BUCKET, key, &valid, after),
            Err(Refusal("AccessDenied", Some("Request has expired")))
        );
        let longer = query(&date, 6000, &signature);
        assert_eq!(
            check_presigned("secret", BUCKET, key, &longer, within),
            Err(Refusal("SignatureDoesNotMatch", None))
        );
        assert_eq!(
            check_presigned("secret", BUCKET, "other/key", &valid, within),
            Err(Refusal("SignatureDoesNotMatch", None))
        );
        assert_eq!(
            check_presigned("secret", BUCKET, key, &Query::parse(None), within),
            Err(Refusal("AccessDenied", Some("Access Denied.")))
        );
    }
}
