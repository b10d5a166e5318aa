//! FastAPI's response and validation-error formats, so the mock fails the way DCS fails.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::json::JsonValue;

/// An early answer from a handler (boxed: responses are large and errors are common here).
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) Box<Response>);

impl From<Response> for ApiError {
    fn from(response: Response) -> Self {
        ApiError(Box::new(response))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        *self.0
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// A compact JSON response with `content-type: application/json`, like Starlette's
/// `JSONResponse`.
pub(crate) fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_bytes_response(status, body),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a response");
            detail_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

pub(crate) fn json_bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[derive(Serialize)]
struct Detail<'a, T: Serialize> {
    detail: &'a T,
}

/// `{"detail": "<message>"}`.
pub(crate) fn detail_response(status: StatusCode, message: &str) -> Response {
    json_response(status, &Detail { detail: &message })
}

pub(crate) fn detail(status: StatusCode, message: &str) -> ApiError {
    ApiError::from(detail_response(status, message))
}

pub(crate) fn not_found(message: &str) -> ApiError {
    detail(StatusCode::NOT_FOUND, message)
}

pub(crate) fn bad_request(message: &str) -> ApiError {
    detail(StatusCode::BAD_REQUEST, message)
}

/// One pydantic error item: `{type, loc, msg, input, ctx?}` in that order.
#[derive(Debug, Serialize)]
pub(crate) struct ValidationItem {
    #[serde(rename = "type")]
    kind: &'static str,
    loc: Vec<JsonValue>,
    msg: String,
    input: JsonValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctx: Option<JsonValue>,
}

fn ctx(pairs: Vec<(&str, JsonValue)>) -> Option<JsonValue> {
    Some(JsonValue::object(
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    ))
}

/// Collects validation errors in FastAPI's order (path, query, then body) and turns them into
/// one `422 {"detail": [...]}`.
#[derive(Debug, Default)]
pub(crate) struct Validator {
    errors: Vec<ValidationItem>,
}

/// A body field that may be absent (pydantic's `exclude_unset`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field<T> {
    Unset,
    Set(T),
}

impl<T> Field<T> {
    pub(crate) fn is_set(&self) -> bool {
        matches!(self, Field::Set(_))
    }

    pub(crate) fn into_option(self) -> Option<T> {
        match self {
            Field::Unset => None,
            Field::Set(value) => Some(value),
        }
    }
}

impl Validator {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn push(
        &mut self,
        kind: &'static str,
        loc: Vec<JsonValue>,
        msg: impl Into<String>,
        input: JsonValue,
        ctx: Option<JsonValue>,
    ) {
        self.errors.push(ValidationItem {
            kind,
            loc,
            msg: msg.into(),
            input,
            ctx,
        });
    }

    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    /// Like [`finish`](Self::finish), for a value that exists exactly when validation passed
    /// (`None` without a recorded error means the body was missing).
    pub(crate) fn finish_with<T>(mut self, value: Option<T>) -> Result<T, ApiError> {
        if self.errors.is_empty() {
            if let Some(value) = value {
                return Ok(value);
            }
            self.push(
                "missing",
                vec![JsonValue::string("body")],
                "Field required",
                JsonValue::Null,
                None,
            );
        }
        Err(self.into_error())
    }

    fn into_error(self) -> ApiError {
        ApiError::from(json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &Detail {
                detail: &self.errors,
            },
        ))
    }

    /// An integer path parameter; returns 0 after recording an error.
    pub(crate) fn path_int(&mut self, name: &str, raw: &str) -> i64 {
        self.parse_int_str(
            vec![JsonValue::string("path"), JsonValue::string(name)],
            raw,
        )
        .unwrap_or(0)
    }

    fn parse_int_str(&mut self, loc: Vec<JsonValue>, raw: &str) -> Option<i64> {
        match raw.trim().parse::<i64>() {
            Ok(value) => Some(value),
            Err(_) => {
                self.push(
                    "int_parsing",
                    loc,
                    "Input should be a valid integer, unable to parse string as an integer",
                    JsonValue::string(raw),
                    None,
                );
                None
            }
        }
    }

    /// An optional integer query parameter with bounds; `None` when absent or invalid.
    pub(crate) fn query_int(
        &mut self,
        query: &Query,
        name: &str,
        ge: Option<i64>,
        le: Option<i64>,
    ) -> Option<i64> {
        let raw = query.get(name)?;
        let loc = vec![JsonValue::string("query"), JsonValue::string(name)];
        let value = self.parse_int_str(loc.clone(), raw)?;
        if let Some(ge) = ge.filter(|ge| value < *ge) {
            self.push(
                "greater_than_equal",
                loc,
                format!("Input should be greater than or equal to {ge}"),
                JsonValue::string(raw),
                ctx(vec![("ge", JsonValue::int(ge))]),
            );
            return None;
        }
        if let Some(le) = le.filter(|le| value > *le) {
            self.push(
                "less_than_equal",
                loc,
                format!("Input should be less than or equal to {le}"),
                JsonValue::string(raw),
                ctx(vec![("le", JsonValue::int(le))]),
            );
            return None;
        }
        Some(value)
    }

    /// A required string query parameter.
    pub(crate) fn query_required_str(&mut self, query: &Query, name: &str) -> Option<String> {
        match query.get(name) {
            Some(value) => Some(value.to_owned()),
            None => {
                self.push(
                    "missing",
                    vec![JsonValue::string("query"), JsonValue::string(name)],
                    "Field required",
                    JsonValue::Null,
                    None,
                );
                None
            }
        }
    }

    /// Parses a JSON request body that must be an object (a pydantic model).
    pub(crate) fn body_object(&mut self, body: &[u8]) -> Option<JsonValue> {
        let body_loc = || vec![JsonValue::string("body")];
        if body.is_empty() {
            self.push(
                "missing",
                body_loc(),
                "Field required",
                JsonValue::Null,
                None,
            );
            return None;
        }
        match JsonValue::parse(body) {
            Ok(value) if value.is_object() => Some(value),
            Ok(value) => {
                self.push(
                    "model_attributes_type",
                    body_loc(),
                    "Input should be a valid dictionary or object to extract fields from",
                    value,
                    None,
                );
                None
            }
            Err(error) => {
                let position = byte_offset(body, error.line(), error.column());
                self.push(
                    "json_invalid",
                    vec![JsonValue::string("body"), JsonValue::int(position as i64)],
                    "JSON decode error",
                    JsonValue::object(Vec::new()),
                    ctx(vec![("error", JsonValue::string(json_error_text(&error)))]),
                );
                None
            }
        }
    }

    fn body_loc(name: &str) -> Vec<JsonValue> {
        vec![JsonValue::string("body"), JsonValue::string(name)]
    }

    fn missing(&mut self, body: &JsonValue, name: &str) {
        self.push(
            "missing",
            Self::body_loc(name),
            "Field required",
            body.clone(),
            None,
        );
    }

    fn check_str(
        &mut self,
        name: &str,
        value: &JsonValue,
        min: Option<usize>,
        max: Option<usize>,
    ) -> Option<String> {
        let Some(text) = value.as_str() else {
            self.push(
                "string_type",
                Self::body_loc(name),
                "Input should be a valid string",
                value.clone(),
                None,
            );
            return None;
        };
        let length = text.chars().count();
        if let Some(min) = min.filter(|min| length < *min) {
            let unit = if min == 1 { "character" } else { "characters" };
            self.push(
                "string_too_short",
                Self::body_loc(name),
                format!("String should have at least {min} {unit}"),
                value.clone(),
                ctx(vec![("min_length", JsonValue::int(min as i64))]),
            );
            return None;
        }
        if let Some(max) = max.filter(|max| length > *max) {
            let unit = if max == 1 { "character" } else { "characters" };
            self.push(
                "string_too_long",
                Self::body_loc(name),
                format!("String should have at most {max} {unit}"),
                value.clone(),
                ctx(vec![("max_length", JsonValue::int(max as i64))]),
            );
            return None;
        }
        Some(text.to_owned())
    }

    /// A required string field.
    pub(crate) fn required_str(
        &mut self,
        body: &JsonValue,
        name: &str,
        min: Option<usize>,
        max: Option<usize>,
    ) -> Option<String> {
        match body.get(name) {
            None => {
                self.missing(body, name);
                None
            }
            Some(value) => self.check_str(name, value, min, max),
        }
    }

    /// A non-nullable string field with a default (unset and invalid give `Unset`).
    pub(crate) fn str_field(
        &mut self,
        body: &JsonValue,
        name: &str,
        min: Option<usize>,
        max: Option<usize>,
    ) -> Field<String> {
        match body.get(name) {
            None => Field::Unset,
            Some(value) => self
                .check_str(name, value, min, max)
                .map_or(Field::Unset, Field::Set),
        }
    }

    /// A `str | None` field.
    pub(crate) fn nullable_str(
        &mut self,
        body: &JsonValue,
        name: &str,
        min: Option<usize>,
        max: Option<usize>,
    ) -> Field<Option<String>> {
        match body.get(name) {
            None => Field::Unset,
            Some(JsonValue::Null) => Field::Set(None),
            Some(value) => self
                .check_str(name, value, min, max)
                .map_or(Field::Unset, |s| Field::Set(Some(s))),
        }
    }

    fn check_int(&mut self, loc: Vec<JsonValue>, value: &JsonValue) -> Option<i64> {
        match value {
            JsonValue::Number(number) => {
                if let Some(int) = number.as_i64() {
                    return Some(int);
                }
                match number.as_f64() {
                    Some(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => {
                        Some(float as i64)
                    }
                    Some(_) => {
                        self.push(
                            "int_from_float",
                            loc,
                            "Input should be a valid integer, got a number with a fractional part",
                            value.clone(),
                            None,
                        );
                        None
                    }
                    None => {
                        self.push(
                            "int_type",
                            loc,
                            "Input should be a valid integer",
                            value.clone(),
                            None,
                        );
                        None
                    }
                }
            }
            JsonValue::Bool(b) => Some(i64::from(*b)),
            JsonValue::String(text) => self.parse_int_str(loc, text),
            _ => {
                self.push(
                    "int_type",
                    loc,
                    "Input should be a valid integer",
                    value.clone(),
                    None,
                );
                None
            }
        }
    }

    /// An `int | None` field.
    pub(crate) fn nullable_int(&mut self, body: &JsonValue, name: &str) -> Field<Option<i64>> {
        match body.get(name) {
            None => Field::Unset,
            Some(JsonValue::Null) => Field::Set(None),
            Some(value) => self
                .check_int(Self::body_loc(name), value)
                .map_or(Field::Unset, |i| Field::Set(Some(i))),
        }
    }

    /// A non-nullable integer field with a default.
    pub(crate) fn int_field(&mut self, body: &JsonValue, name: &str) -> Field<i64> {
        match body.get(name) {
            None => Field::Unset,
            Some(value) => self
                .check_int(Self::body_loc(name), value)
                .map_or(Field::Unset, Field::Set),
        }
    }

    fn check_bool(&mut self, name: &str, value: &JsonValue) -> Option<bool> {
        match value {
            JsonValue::Bool(b) => Some(*b),
            JsonValue::Number(n) if n.as_i64() == Some(0) => Some(false),
            JsonValue::Number(n) if n.as_i64() == Some(1) => Some(true),
            JsonValue::String(text) => match text.to_ascii_lowercase().as_str() {
                "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
                "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
                _ => {
                    self.push(
                        "bool_parsing",
                        Self::body_loc(name),
                        "Input should be a valid boolean, unable to interpret input",
                        value.clone(),
                        None,
                    );
                    None
                }
            },
            _ => {
                self.push(
                    "bool_type",
                    Self::body_loc(name),
                    "Input should be a valid boolean",
                    value.clone(),
                    None,
                );
                None
            }
        }
    }

    /// A non-nullable boolean field with a default.
    pub(crate) fn bool_field(&mut self, body: &JsonValue, name: &str) -> Field<bool> {
        match body.get(name) {
            None => Field::Unset,
            Some(value) => self
                .check_bool(name, value)
                .map_or(Field::Unset, Field::Set),
        }
    }

    /// A `bool | None` field.
    pub(crate) fn nullable_bool(&mut self, body: &JsonValue, name: &str) -> Field<Option<bool>> {
        match body.get(name) {
            None => Field::Unset,
            Some(JsonValue::Null) => Field::Set(None),
            Some(value) => self
                .check_bool(name, value)
                .map_or(Field::Unset, |b| Field::Set(Some(b))),
        }
    }

    /// A `dict | None` field.
    pub(crate) fn nullable_object(
        &mut self,
        body: &JsonValue,
        name: &str,
    ) -> Field<Option<serde_json::Value>> {
        match body.get(name) {
            None => Field::Unset,
            Some(JsonValue::Null) => Field::Set(None),
            Some(value) if value.is_object() => Field::Set(Some(value.to_serde())),
            Some(value) => {
                self.push(
                    "dict_type",
                    Self::body_loc(name),
                    "Input should be a valid dictionary",
                    value.clone(),
                    None,
                );
                Field::Unset
            }
        }
    }

    /// A string enum field (`None` allowed when `nullable`).
    pub(crate) fn enum_field(
        &mut self,
        body: &JsonValue,
        name: &str,
        allowed: &[&str],
        nullable: bool,
    ) -> Field<Option<String>> {
        match body.get(name) {
            None => Field::Unset,
            Some(JsonValue::Null) if nullable => Field::Set(None),
            Some(JsonValue::String(text)) if allowed.contains(&text.as_str()) => {
                Field::Set(Some(text.clone()))
            }
            Some(value) => {
                let expected = quoted_alternatives(allowed);
                self.push(
                    "enum",
                    Self::body_loc(name),
                    format!("Input should be {expected}"),
                    value.clone(),
                    ctx(vec![("expected", JsonValue::string(expected))]),
                );
                Field::Unset
            }
        }
    }

    /// A required list of integers with a maximum length.
    pub(crate) fn int_list(
        &mut self,
        body: &JsonValue,
        name: &str,
        max_items: usize,
    ) -> Option<Vec<i64>> {
        let value = match body.get(name) {
            None => {
                self.missing(body, name);
                return None;
            }
            Some(value) => value,
        };
        let JsonValue::Array(items) = value else {
            self.push(
                "list_type",
                Self::body_loc(name),
                "Input should be a valid list",
                value.clone(),
                None,
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let before = self.errors.len();
        for (index, item) in items.iter().enumerate() {
            let loc = vec![
                JsonValue::string("body"),
                JsonValue::string(name),
                JsonValue::int(index as i64),
            ];
            if let Some(int) = self.check_int(loc, item) {
                out.push(int);
            }
        }
        if items.len() > max_items {
            self.push(
                "too_long",
                Self::body_loc(name),
                format!(
                    "List should have at most {max_items} items after validation, not {}",
                    items.len()
                ),
                value.clone(),
                ctx(vec![
                    ("field_type", JsonValue::string("List")),
                    ("max_length", JsonValue::int(max_items as i64)),
                    ("actual_length", JsonValue::int(items.len() as i64)),
                ]),
            );
            return None;
        }
        (self.errors.len() == before).then_some(out)
    }

    /// An ISO-8601 `datetime | None` field.
    pub(crate) fn nullable_datetime(
        &mut self,
        body: &JsonValue,
        name: &str,
    ) -> Field<Option<chrono::DateTime<chrono::Utc>>> {
        match body.get(name) {
            None => Field::Unset,
            Some(JsonValue::Null) => Field::Set(None),
            Some(JsonValue::String(text)) => match parse_datetime(text) {
                Some(at) => Field::Set(Some(at)),
                None => {
                    self.push(
                        "datetime_from_date_parsing",
                        Self::body_loc(name),
                        "Input should be a valid datetime or date, invalid character in year",
                        JsonValue::string(text.clone()),
                        ctx(vec![(
                            "error",
                            JsonValue::string("invalid character in year"),
                        )]),
                    );
                    Field::Unset
                }
            },
            Some(value) => {
                self.push(
                    "datetime_type",
                    Self::body_loc(name),
                    "Input should be a valid datetime",
                    value.clone(),
                    None,
                );
                Field::Unset
            }
        }
    }
}

/// `'a', 'b' or 'c'`, as pydantic lists enum members.
fn quoted_alternatives(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn parse_datetime(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&chrono::Utc));
    }
    // pydantic treats a naive datetime as given; DCS stores it as UTC.
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// serde_json reports line and column (1-based); Python reports a character offset.
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let text = String::from_utf8_lossy(body);
    let mut offset = 0;
    for (index, content) in text.split('\n').enumerate() {
        if index + 1 == line {
            return offset + column.saturating_sub(1).min(content.chars().count());
        }
        offset += content.chars().count() + 1;
    }
    text.chars().count()
}

/// Python's `json` wording for the common decode errors.
fn json_error_text(error: &serde_json::Error) -> String {
    let message = error.to_string();
    if message.starts_with("trailing characters") {
        "Extra data".to_owned()
    } else if message.starts_with("key must be a string") {
        "Expecting property name enclosed in double quotes".to_owned()
    } else if message.starts_with("expected `:`") {
        "Expecting ':' delimiter".to_owned()
    } else if message.starts_with("expected `,` or `}`") {
        "Expecting ',' delimiter".to_owned()
    } else {
        "Expecting value".to_owned()
    }
}

/// Decoded query parameters; a repeated name keeps its last value, as Starlette does.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let decode = |part: &str| {
            percent_decode_str(&part.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((key, value)) => (decode(key), decode(value)),
                None => (decode(part), String::new()),
            })
            .collect();
        Query { pairs }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(validator: Validator) -> serde_json::Value {
        let response = validator.finish().unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = futures_body(response);
        serde_json::from_slice(&body).unwrap()
    }

    fn futures_body(response: Response) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            use http_body_util::BodyExt;
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec()
        })
    }

    #[test]
    fn missing_body_field_echoes_the_body_in_order() {
        let mut v = Validator::new();
        let body = v.body_object(br#"{"email": "a@b.c", "z": 1}"#).unwrap();
        v.required_str(&body, "email", None, Some(320));
        v.required_str(&body, "password", None, None);
        let response = v.finish().unwrap_err().into_response();
        let raw = futures_body(response);
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            r#"{"detail":[{"type":"missing","loc":["body","password"],"msg":"Field required","input":{"email":"a@b.c","z":1}}]}"#
        );
    }

    #[test]
    fn query_bounds_match_fastapi() {
        let query = Query::parse(Some("limit=0&skip=-1&x=%20a+b"));
        assert_eq!(query.get("x"), Some(" a b"));
        let mut v = Validator::new();
        v.query_int(&query, "skip", Some(0), None);
        v.query_int(&query, "limit", Some(1), Some(1000));
        assert_eq!(
            errors(v),
            serde_json::json!({"detail": [
                {"type":"greater_than_equal","loc":["query","skip"],"msg":"Input should be greater than or equal to 0","input":"-1","ctx":{"ge":0}},
                {"type":"greater_than_equal","loc":["query","limit"],"msg":"Input should be greater than or equal to 1","input":"0","ctx":{"ge":1}}
            ]})
        );
    }

    #[test]
    fn string_length_and_type_errors() {
        let mut v = Validator::new();
        let body = v.body_object(br#"{"secret": "short", "url": 5}"#).unwrap();
        v.required_str(&body, "url", None, Some(512));
        v.required_str(&body, "secret", Some(16), Some(255));
        assert_eq!(
            errors(v),
            serde_json::json!({"detail": [
                {"type":"string_type","loc":["body","url"],"msg":"Input should be a valid string","input":5},
                {"type":"string_too_short","loc":["body","secret"],"msg":"String should have at least 16 characters","input":"short","ctx":{"min_length":16}}
            ]})
        );
    }

    #[test]
    fn invalid_and_missing_bodies() {
        let mut v = Validator::new();
        assert!(v.body_object(b"").is_none());
        assert!(v.body_object(b"[1]").is_none());
        assert!(v.body_object(b"{\"a\": }").is_none());
        let detail = errors(v);
        assert_eq!(detail["detail"][0]["type"], "missing");
        assert_eq!(detail["detail"][0]["loc"], serde_json::json!(["body"]));
        assert_eq!(detail["detail"][1]["type"], "model_attributes_type");
        assert_eq!(detail["detail"][2]["type"], "json_invalid");
        assert_eq!(detail["detail"][2]["loc"], serde_json::json!(["body", 6]));
        assert_eq!(detail["detail"][2]["ctx"]["error"], "Expecting value");
    }

    #[test]
    fn int_lists_and_enums() {
        let mut v = Validator::new();
        let ids: Vec<i64> = (0..101).collect();
        let body = JsonValue::parse(
            serde_json::to_string(&serde_json::json!({"ids": ids, "status": "gone"}))
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        assert!(v.int_list(&body, "ids", 100).is_none());
        v.enum_field(&body, "status", &["draft", "published", "archived"], true);
        let detail = errors(v);
        assert_eq!(detail["detail"][0]["type"], "too_long");
        assert_eq!(
            detail["detail"][0]["msg"],
            "List should have at most 100 items after validation, not 101"
        );
        assert_eq!(
            detail["detail"][1]["msg"],
            "Input should be 'draft', 'published' or 'archived'"
        );
        let mut ok = Validator::new();
        let body = JsonValue::parse(br#"{"ids": [1, "2", 3.0]}"#).unwrap();
        assert_eq!(ok.int_list(&body, "ids", 100), Some(vec![1, 2, 3]));
        assert!(ok.finish().is_ok());
    }
}
