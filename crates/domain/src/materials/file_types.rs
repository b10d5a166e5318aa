//! Which files a teacher may upload: the type table, and the check that the declared type,
//! the file name's extension and the first bytes agree.
//!
//! Magic numbers come from the `infer` crate; what is added here is the table and the rules
//! no magic-number crate has: plain text has no signature (it must be UTF-8 without NULs), and
//! scripts and executables are refused whatever they claim to be.

use super::MaterialKind;

/// How many leading bytes the check needs (Office documents name their parts a few KiB in).
pub const SNIFF_LEN: usize = 8 * 1024;

/// The type of an accepted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileType {
    /// The canonical MIME type, stored and served.
    pub mime: &'static str,
    pub kind: MaterialKind,
}

/// What the first bytes must look like.
#[derive(Debug, Clone, Copy)]
enum Magic {
    /// One of these `infer` MIME types.
    Any(&'static [&'static str]),
    /// UTF-8 text with no signature of another format.
    Text,
}

struct Row {
    mime: &'static str,
    kind: MaterialKind,
    /// Other names browsers and tools send for the same type.
    aliases: &'static [&'static str],
    extensions: &'static [&'static str],
    magic: Magic,
}

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// The seed's table: documents (pdf, text, docx), images (jpeg, png, gif, webp), audio (mpeg,
/// wav, ogg, mp4, x-m4a), video (mp4, webm, quicktime).
const TABLE: &[Row] = &[
    Row {
        mime: "application/pdf",
        kind: MaterialKind::Document,
        aliases: &[],
        extensions: &["pdf"],
        magic: Magic::Any(&["application/pdf"]),
    },
    Row {
        mime: "text/plain",
        kind: MaterialKind::Document,
        aliases: &[],
        extensions: &["txt"],
        magic: Magic::Text,
    },
    Row {
        mime: DOCX,
        kind: MaterialKind::Document,
        aliases: &[],
        extensions: &["docx"],
        // A .docx is a ZIP; `infer` names it only when Word's parts come first.
        magic: Magic::Any(&[DOCX, "application/zip"]),
    },
    Row {
        mime: "image/jpeg",
        kind: MaterialKind::Image,
        aliases: &["image/jpg", "image/pjpeg"],
        extensions: &["jpg", "jpeg"],
        magic: Magic::Any(&["image/jpeg"]),
    },
    Row {
        mime: "image/png",
        kind: MaterialKind::Image,
        aliases: &[],
        extensions: &["png"],
        magic: Magic::Any(&["image/png"]),
    },
    Row {
        mime: "image/gif",
        kind: MaterialKind::Image,
        aliases: &[],
        extensions: &["gif"],
        magic: Magic::Any(&["image/gif"]),
    },
    Row {
        mime: "image/webp",
        kind: MaterialKind::Image,
        aliases: &[],
        extensions: &["webp"],
        magic: Magic::Any(&["image/webp"]),
    },
    Row {
        mime: "audio/mpeg",
        kind: MaterialKind::Audio,
        aliases: &["audio/mp3", "audio/mpeg3", "audio/x-mpeg"],
        extensions: &["mp3"],
        magic: Magic::Any(&["audio/mpeg"]),
    },
    Row {
        mime: "audio/wav",
        kind: MaterialKind::Audio,
        aliases: &["audio/x-wav", "audio/wave", "audio/vnd.wave"],
        extensions: &["wav"],
        magic: Magic::Any(&["audio/x-wav"]),
    },
    Row {
        mime: "audio/ogg",
        kind: MaterialKind::Audio,
        aliases: &["application/ogg"],
        extensions: &["ogg", "oga", "opus"],
        magic: Magic::Any(&["audio/ogg", "audio/opus"]),
    },
    Row {
        mime: "audio/mp4",
        kind: MaterialKind::Audio,
        aliases: &[],
        extensions: &["m4a", "mp4"],
        magic: Magic::Any(&["audio/m4a", "video/mp4"]),
    },
    Row {
        mime: "audio/x-m4a",
        kind: MaterialKind::Audio,
        aliases: &["audio/m4a"],
        extensions: &["m4a"],
        magic: Magic::Any(&["audio/m4a", "video/mp4"]),
    },
    Row {
        mime: "video/mp4",
        kind: MaterialKind::Video,
        aliases: &[],
        extensions: &["mp4", "m4v"],
        magic: Magic::Any(&["video/mp4", "video/x-m4v"]),
    },
    Row {
        mime: "video/webm",
        kind: MaterialKind::Video,
        aliases: &[],
        extensions: &["webm"],
        magic: Magic::Any(&["video/webm"]),
    },
    Row {
        mime: "video/quicktime",
        kind: MaterialKind::Video,
        aliases: &[],
        extensions: &["mov", "qt"],
        magic: Magic::Any(&["video/quicktime"]),
    },
];

/// `infer` types that are programs or scripts: refused whatever the upload claims.
const EXECUTABLE: &[&str] = &[
    "application/x-executable",
    "application/vnd.microsoft.portable-executable",
    "application/x-mach-binary",
    "application/java",
    "application/wasm",
    "application/vnd.android.dex",
    "application/vnd.android.dey",
    "application/x-llvm",
    "application/x-shellscript",
    "text/x-shellscript",
    "text/html",
    "text/xml",
    "application/x-msdownload",
    "application/x-ole-storage",
];

/// Why a file was refused (the message is shown to the teacher).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileTypeError {
    #[error("File type {0:?} is not allowed. Allowed: {ALLOWED}.")]
    NotAllowed(String),
    #[error("The file name needs an extension matching its type ({expected}).")]
    MissingExtension { expected: String },
    #[error("The extension .{extension} does not match the declared type {mime}.")]
    ExtensionMismatch {
        extension: String,
        mime: &'static str,
    },
    #[error("The file's content does not match its declared type {mime}{found}.")]
    ContentMismatch { mime: &'static str, found: String },
    #[error("Scripts and executables are not accepted{found}.")]
    Executable { found: String },
}

/// The allowed types, for messages.
pub const ALLOWED: &str =
    "pdf, txt, docx, jpeg, png, gif, webp, mp3, wav, ogg, m4a, mp4, webm, mov";

fn normalize_mime(declared: &str) -> String {
    declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn row_for(mime: &str) -> Option<&'static Row> {
    TABLE
        .iter()
        .find(|row| row.mime == mime || row.aliases.contains(&mime))
}

/// Text markers of active content (scripts run by a browser, shell or PHP).
fn looks_like_script(prefix: &[u8]) -> bool {
    let start = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(prefix);
    let start = start.trim_ascii_start();
    if start.starts_with(b"#!") || start.starts_with(b"MZ") {
        return true;
    }
    let lowered = prefix.to_ascii_lowercase();
    [
        b"<?php".as_slice(),
        b"<script",
        b"<html",
        b"<!doctype html",
        b"<svg",
        b"<iframe",
    ]
    .iter()
    .any(|marker| lowered.windows(marker.len()).any(|w| w == *marker))
}

/// UTF-8 with no NUL, allowing a character cut off at the end of the prefix.
fn is_text(prefix: &[u8], complete: bool) -> bool {
    if prefix.contains(&0) {
        return false;
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => true,
        Err(error) => !complete && error.error_len().is_none(),
    }
}

/// Checks an upload: `declared` is the part's `Content-Type`, `filename` its file name and
/// `prefix` its first [`SNIFF_LEN`] bytes (all of it when shorter; `complete` says so).
pub fn check_file_type(
    declared: Option<&str>,
    filename: &str,
    prefix: &[u8],
    complete: bool,
) -> Result<FileType, FileTypeError> {
    let sniffed = infer::get(prefix).map(|t| t.mime_type());
    let found = |s: Option<&str>| s.map(|m| format!(" (found {m})")).unwrap_or_default();
    if let Some(kind) = sniffed
        && EXECUTABLE.contains(&kind)
    {
        return Err(FileTypeError::Executable {
            found: found(Some(kind)),
        });
    }
    let declared = normalize_mime(declared.unwrap_or_default());
    let row = row_for(&declared).ok_or_else(|| {
        FileTypeError::NotAllowed(if declared.is_empty() {
            "(none)".into()
        } else {
            declared.clone()
        })
    })?;
    let extension = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| !ext.is_empty());
    let Some(extension) = extension else {
        return Err(FileTypeError::MissingExtension {
            expected: row.extensions.join(", ."),
        });
    };
    if !row.extensions.contains(&extension.as_str()) {
        return Err(FileTypeError::ExtensionMismatch {
            extension,
            mime: row.mime,
        });
    }
    let matches = match row.magic {
        Magic::Any(types) => sniffed.is_some_and(|kind| types.contains(&kind)),
        Magic::Text => {
            if sniffed.is_none() && looks_like_script(prefix) {
                return Err(FileTypeError::Executable {
                    found: String::new(),
                });
            }
            sniffed.is_none() && is_text(prefix, complete)
        }
    };
    if !matches {
        return Err(FileTypeError::ContentMismatch {
            mime: row.mime,
            found: found(sniffed),
        });
    }
    Ok(FileType {
        mime: row.mime,
        kind: row.kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n";
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0";
    const MP3: &[u8] = b"ID3\x04\0\0\0\0\0\x00\xff\xfb\x90\x64";

    fn check(declared: &str, name: &str, bytes: &[u8]) -> Result<FileType, FileTypeError> {
        check_file_type(Some(declared), name, bytes, true)
    }

    #[test]
    fn agreeing_type_extension_and_bytes_pass() {
        let png = check("image/png", "a.PNG", PNG).unwrap();
        assert_eq!((png.mime, png.kind), ("image/png", MaterialKind::Image));
        assert_eq!(
            check("application/pdf", "x.pdf", PDF).unwrap().kind,
            MaterialKind::Document
        );
        assert_eq!(
            check("audio/mp3", "song.mp3", MP3).unwrap().mime,
            "audio/mpeg"
        );
        let text = check(
            "text/plain; charset=utf-8",
            "notes.txt",
            "Grüße\n".as_bytes(),
        );
        assert_eq!(text.unwrap().mime, "text/plain");
    }

    #[test]
    fn any_disagreement_is_refused() {
        assert!(matches!(
            check("image/png", "a.jpg", PNG),
            Err(FileTypeError::ExtensionMismatch { .. })
        ));
        assert!(matches!(
            check("image/jpeg", "a.jpg", PNG),
            Err(FileTypeError::ContentMismatch { .. })
        ));
        assert!(matches!(
            check("application/pdf", "a.pdf", b"just text"),
            Err(FileTypeError::ContentMismatch { .. })
        ));
        assert!(matches!(
            check("image/png", "png", PNG),
            Err(FileTypeError::MissingExtension { .. })
        ));
        assert!(matches!(
            check("application/zip", "a.zip", b"PK\x03\x04"),
            Err(FileTypeError::NotAllowed(_))
        ));
        assert!(matches!(
            check_file_type(None, "a.png", PNG, true),
            Err(FileTypeError::NotAllowed(_))
        ));
        assert!(matches!(
            check("text/plain", "a.txt", b"bin\0ary"),
            Err(FileTypeError::ContentMismatch { .. })
        ));
    }

    #[test]
    fn scripts_and_executables_are_refused_whatever_they_claim() {
        for (declared, name, bytes) in [
            ("text/plain", "run.txt", b"#!/bin/sh\nrm -rf /\n".as_slice()),
            ("text/plain", "page.txt", b"<html><script>alert(1)</script>"),
            ("text/plain", "x.txt", b"hello <?php system($_GET['c']); ?>"),
            ("image/png", "x.png", &[ELF, &[0u8; 64]].concat()),
            (
                "application/pdf",
                "x.pdf",
                b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff",
            ),
            ("text/plain", "x.txt", b"  <svg onload=alert(1)>"),
        ] {
            assert!(
                matches!(
                    check(declared, name, bytes),
                    Err(FileTypeError::Executable { .. })
                ),
                "{name}: {:?}",
                check(declared, name, bytes)
            );
        }
    }

    #[test]
    fn a_character_cut_by_the_prefix_is_still_text() {
        let text = "ü".repeat(10);
        let cut = &text.as_bytes()[..7];
        assert!(check_file_type(Some("text/plain"), "a.txt", cut, false).is_ok());
        assert!(check_file_type(Some("text/plain"), "a.txt", cut, true).is_err());
    }
}
