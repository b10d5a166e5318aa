//! Who may read a book's content (its config, activities, assets and media).
//!
//! - Admins and supervisors: every book, whatever its status.
//! - A publisher: its own books (the token's publisher id), whatever their status.
//! - Teachers and students: every *published* book. Assignment rules (which classes see which
//!   books) do not exist yet; when they do, they narrow this rule here and nowhere else.
//!
//! - The holder of a signed asset URL: the book it was signed for, until it expires.
//!
//! A book the viewer may not see is reported as not found, so its existence does not leak.

/// The role of the person asking, as the domain sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerRole {
    Admin,
    Supervisor,
    Publisher,
    Teacher,
    Student,
    /// The holder of a signed asset URL: the server handed it to someone who could read the
    /// book, and it expires like a presigned S3 URL.
    SignedLink,
}

/// The person asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub role: ViewerRole,
    /// The DCS publisher a publisher account belongs to (none for other roles).
    pub publisher_id: Option<i64>,
}

impl Viewer {
    /// A viewer with a role and no publisher.
    pub fn new(role: ViewerRole) -> Self {
        Self {
            role,
            publisher_id: None,
        }
    }

    /// A publisher account of `publisher_id`.
    pub fn publisher(publisher_id: i64) -> Self {
        Self {
            role: ViewerRole::Publisher,
            publisher_id: Some(publisher_id),
        }
    }
}

/// A book's lifecycle state in DCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookStatus {
    Draft,
    Published,
    Archived,
}

impl BookStatus {
    /// DCS's `status` string; anything unknown counts as a draft (not shown to learners).
    pub fn from_dcs(status: &str) -> Self {
        match status {
            "published" => BookStatus::Published,
            "archived" => BookStatus::Archived,
            _ => BookStatus::Draft,
        }
    }
}

/// What the access rule needs to know about a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookVisibility {
    pub publisher_id: i64,
    pub status: BookStatus,
}

/// Whether `viewer` may read the content of a book.
pub fn can_read_book(viewer: &Viewer, book: &BookVisibility) -> bool {
    match viewer.role {
        ViewerRole::Admin | ViewerRole::Supervisor | ViewerRole::SignedLink => true,
        ViewerRole::Publisher => viewer.publisher_id == Some(book.publisher_id),
        ViewerRole::Teacher | ViewerRole::Student => book.status == BookStatus::Published,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(publisher_id: i64, status: BookStatus) -> BookVisibility {
        BookVisibility {
            publisher_id,
            status,
        }
    }

    #[test]
    fn staff_read_every_book() {
        for role in [ViewerRole::Admin, ViewerRole::Supervisor] {
            for status in [
                BookStatus::Draft,
                BookStatus::Published,
                BookStatus::Archived,
            ] {
                assert!(can_read_book(&Viewer::new(role), &book(7, status)));
            }
        }
    }

    #[test]
    fn publishers_read_only_their_own_books() {
        let own = Viewer::publisher(7);
        assert!(can_read_book(&own, &book(7, BookStatus::Draft)));
        assert!(can_read_book(&own, &book(7, BookStatus::Archived)));
        assert!(!can_read_book(&own, &book(8, BookStatus::Published)));
        // A publisher account without a publisher id sees nothing.
        assert!(!can_read_book(
            &Viewer::new(ViewerRole::Publisher),
            &book(7, BookStatus::Published)
        ));
    }

    #[test]
    fn learners_read_published_books_only() {
        for role in [ViewerRole::Teacher, ViewerRole::Student] {
            let viewer = Viewer::new(role);
            assert!(can_read_book(&viewer, &book(7, BookStatus::Published)));
            assert!(!can_read_book(&viewer, &book(7, BookStatus::Archived)));
            assert!(!can_read_book(&viewer, &book(7, BookStatus::Draft)));
        }
    }

    #[test]
    fn unknown_dcs_status_is_not_published() {
        assert_eq!(BookStatus::from_dcs("published"), BookStatus::Published);
        assert_eq!(BookStatus::from_dcs("archived"), BookStatus::Archived);
        assert_eq!(BookStatus::from_dcs("draft"), BookStatus::Draft);
        assert_eq!(BookStatus::from_dcs("review"), BookStatus::Draft);
    }
}
