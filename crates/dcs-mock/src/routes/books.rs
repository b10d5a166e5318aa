//! `/books/*`: JWT or API key.

use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::{ok_json, with_events};
use crate::app::App;
use crate::auth::{Scope, bearer};
use crate::content::PreparedBook;
use crate::fastapi::{
    ApiError, ApiResult, Field, Query, Validator, bad_request, json_response, not_found,
};
use crate::json::JsonValue;
use crate::model::{Book, BookStatus};
use crate::state::BookChanges;

const STATUSES: &[&str] = &["draft", "published", "archived"];

pub(super) async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let token = bearer(&headers)?;
    let query = Query::parse(query.as_deref());
    let mut v = Validator::new();
    let publisher_id = v.query_int(&query, "publisher_id", None, None);
    v.finish()?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    let books: Vec<Book> = app
        .lock()
        .all_books()
        .into_iter()
        .filter(|b| publisher_id.is_none_or(|id| b.publisher_id == id))
        .collect();
    ok_json(&books)
}

fn authorized_id(app: &App, headers: &HeaderMap, raw_id: &str) -> Result<i64, ApiError> {
    let token = bearer(headers)?;
    let mut v = Validator::new();
    let id = v.path_int("book_id", raw_id);
    v.finish()?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    Ok(id)
}

pub(super) async fn get_one(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let book = app
        .lock()
        .book(id)
        .ok_or_else(|| not_found("Book not found"))?;
    ok_json(&book)
}

/// The books found, in id order; unknown and archived ids are skipped.
pub(super) async fn batch(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let ids = v
        .body_object(&body)
        .and_then(|body| v.int_list(&body, "ids", 100));
    v.finish()?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    let ids = ids.unwrap_or_default();
    let books: Vec<Book> = app
        .lock()
        .all_books()
        .into_iter()
        .filter(|b| ids.contains(&b.id) && b.status != BookStatus::Archived)
        .collect();
    ok_json(&books)
}

/// Fields shared by `BookCreate` and `BookUpdate`.
struct BookFields {
    publisher: Field<Option<String>>,
    publisher_id: Field<Option<i64>>,
    book_name: Field<Option<String>>,
    book_title: Field<Option<String>>,
    book_cover: Field<Option<String>>,
    activity_count: Field<Option<i64>>,
    activity_details: Field<Option<serde_json::Value>>,
    total_size: Field<Option<i64>>,
    language: Field<Option<String>>,
    category: Field<Option<String>>,
    status: Field<Option<String>>,
}

impl BookFields {
    /// `create` applies `BookCreate`'s rules: `book_name` required, `language` not nullable.
    fn read(v: &mut Validator, body: &JsonValue, create: bool) -> Self {
        let publisher = v.nullable_str(body, "publisher", None, Some(255));
        let book_name = if create {
            v.required_str(body, "book_name", None, Some(255))
                .map_or(Field::Unset, |name| Field::Set(Some(name)))
        } else {
            v.nullable_str(body, "book_name", None, Some(255))
        };
        let book_title = v.nullable_str(body, "book_title", None, Some(255));
        let book_cover = v.nullable_str(body, "book_cover", None, Some(512));
        let activity_count = v.nullable_int(body, "activity_count");
        let activity_details = v.nullable_object(body, "activity_details");
        let total_size = v.nullable_int(body, "total_size");
        let language = if create {
            match v.str_field(body, "language", None, Some(64)) {
                Field::Set(language) => Field::Set(Some(language)),
                Field::Unset => Field::Unset,
            }
        } else {
            v.nullable_str(body, "language", None, Some(64))
        };
        let category = v.nullable_str(body, "category", None, Some(128));
        let status = v.enum_field(body, "status", STATUSES, !create);
        let publisher_id = v.nullable_int(body, "publisher_id");
        BookFields {
            publisher,
            publisher_id,
            book_name,
            book_title,
            book_cover,
            activity_count,
            activity_details,
            total_size,
            language,
            category,
            status,
        }
    }

    fn any_set(&self) -> bool {
        [
            self.publisher.is_set(),
            self.publisher_id.is_set(),
            self.book_name.is_set(),
            self.book_title.is_set(),
            self.book_cover.is_set(),
            self.activity_count.is_set(),
            self.activity_details.is_set(),
            self.total_size.is_set(),
            self.language.is_set(),
            self.category.is_set(),
            self.status.is_set(),
        ]
        .contains(&true)
    }
}

fn parse_status(value: Option<String>) -> Option<BookStatus> {
    value.as_deref().and_then(BookStatus::parse)
}

/// `POST /books/`: a metadata-only book (draft by default).
pub(super) async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let fields = v
        .body_object(&body)
        .map(|body| BookFields::read(&mut v, &body, true));
    let fields = v.finish_with(fields)?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    let publisher = match (
        fields.publisher.into_option().flatten(),
        fields.publisher_id.into_option().flatten(),
    ) {
        (Some(name), _) => name.trim().to_owned(),
        (None, Some(id)) => app
            .lock()
            .publisher(id)
            .map(|p| p.name.clone())
            .ok_or_else(|| not_found("Publisher not found"))?,
        (None, None) => return Err(bad_request("publisher is required")),
    };
    let prepared = PreparedBook {
        publisher,
        book_name: fields.book_name.into_option().flatten().unwrap_or_default(),
        book_title: fields.book_title.into_option().flatten(),
        book_cover: fields.book_cover.into_option().flatten(),
        activity_count: fields.activity_count.into_option().flatten(),
        activity_details: fields.activity_details.into_option().flatten(),
        total_size: fields.total_size.into_option().flatten(),
        language: fields
            .language
            .into_option()
            .flatten()
            .unwrap_or_else(|| "en".to_owned()),
        category: fields.category.into_option().flatten(),
        status: parse_status(fields.status.into_option().flatten()).unwrap_or(BookStatus::Draft),
        files: Vec::new(),
        logo: None,
    };
    let (book, event) = app.change(|state| state.create_book(prepared))?;
    Ok(with_events(
        json_response(StatusCode::CREATED, &book),
        event,
    ))
}

/// `PUT /books/{id}`: only the fields sent change; an empty update changes nothing and sends
/// no webhook.
pub(super) async fn update(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let id = v.path_int("book_id", &raw_id);
    let fields = v
        .body_object(&body)
        .map(|body| BookFields::read(&mut v, &body, false));
    v.finish()?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    let current = app
        .lock()
        .book(id)
        .ok_or_else(|| not_found("Book not found"))?;
    let Some(fields) = fields.filter(BookFields::any_set) else {
        return ok_json(&current);
    };
    let changes = BookChanges {
        publisher: fields.publisher.into_option(),
        publisher_id: fields.publisher_id.into_option(),
        // NOT NULL columns: an explicit null leaves the value as it is.
        book_name: fields.book_name.into_option().flatten(),
        language: fields.language.into_option().flatten(),
        status: parse_status(fields.status.into_option().flatten()),
        book_title: fields.book_title.into_option(),
        book_cover: fields.book_cover.into_option(),
        activity_count: fields.activity_count.into_option(),
        activity_details: fields.activity_details.into_option(),
        total_size: fields.total_size.into_option(),
        category: fields.category.into_option(),
    };
    let (book, event) = app.change(|state| state.update_book(id, changes))?;
    Ok(with_events(json_response(StatusCode::OK, &book), event))
}

/// `DELETE /books/{id}`: archive (soft delete).
pub(super) async fn remove(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let (book, event) = app.change(|state| state.delete_book(id))?;
    Ok(with_events(json_response(StatusCode::OK, &book), event))
}
