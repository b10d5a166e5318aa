//! Cache keys for DCS data. Keys are colon-separated segments, so a prefix invalidation
//! (`dcs:books:id:1`) removes that book's entries and never those of book 10.

/// Everything cached from DCS.
pub const ALL: &str = "dcs";

/// Every book entry: lists, records, covers, configs.
pub const BOOKS: &str = "dcs:books";
/// The DCS book list and every response rendered from it.
pub const BOOK_LISTS: &str = "dcs:books:list";
/// Every publisher entry.
pub const PUBLISHERS: &str = "dcs:publishers";
/// The DCS publisher list and every response rendered from it.
pub const PUBLISHER_LISTS: &str = "dcs:publishers:list";

/// The full book list as DCS returned it (archived included).
pub fn book_list_source() -> String {
    format!("{BOOK_LISTS}:source")
}

/// A rendered `/books` response for one normalised query (`format_args!`, so that the key is
/// written once into one allocation: it is built on every catalog read).
pub fn book_list_view(query: std::fmt::Arguments<'_>) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(BOOK_LISTS.len() + 80);
    key.push_str(BOOK_LISTS);
    key.push_str(":view:");
    key.write_fmt(query)
        .expect("writing to a String cannot fail");
    key
}

/// One book record and everything cached under it (cover, config).
pub fn book(id: i64) -> String {
    format!("{BOOKS}:id:{id}")
}

pub fn book_cover(id: i64) -> String {
    format!("{}:cover", book(id))
}

pub fn book_config(id: i64) -> String {
    format!("{}:config", book(id))
}

/// Set once the book's activities were imported (see `BookContent::activities`).
pub fn book_activities_imported(id: i64) -> String {
    format!("{}:activities-imported", book(id))
}

/// Path -> size of every file of the book (for byte ranges on DCS-served assets).
pub fn book_files(id: i64) -> String {
    format!("{}:files", book(id))
}

/// The full publisher list (all pages, active publishers only).
pub fn publisher_list() -> String {
    format!("{PUBLISHER_LISTS}:source")
}

/// One publisher record and everything cached under it (logo).
pub fn publisher(id: i64) -> String {
    format!("{PUBLISHERS}:id:{id}")
}

pub fn publisher_logo(id: i64) -> String {
    format!("{}:logo", publisher(id))
}
