//! The URLs of this API that other modules need (the prefix, the webhook route, the links the
//! catalog hands out). A leaf: routes and services both import it, it imports neither.

use domain::catalog::CatalogLinks;

/// Prefix of the versioned API.
pub const API_PREFIX: &str = "/api/v1";

/// The DCS webhook route, under [`API_PREFIX`].
pub const WEBHOOK_ROUTE: &str = "/webhooks/dream-storage";

/// The callback URL DCS delivers to, for a public base URL such as `https://lms.example`.
pub fn webhook_callback_url(public_url: &str) -> String {
    format!(
        "{}{API_PREFIX}{WEBHOOK_ROUTE}",
        public_url.trim_end_matches('/')
    )
}

/// The links in catalog answers: the LMS's own logo and cover routes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiLinks;

impl CatalogLinks for ApiLinks {
    fn publisher_logo(&self, id: i64) -> String {
        format!("{API_PREFIX}/publishers/{id}/logo")
    }

    fn book_cover(&self, id: i64) -> String {
        format!("{API_PREFIX}/books/{id}/cover")
    }
}
