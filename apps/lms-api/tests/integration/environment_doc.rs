//! The environment reference (`docs/environment.md`) and the production compose file
//! (`deploy/compose.production.yml`) checked against the settings code, so neither can name a
//! variable the server does not read, or leave one out of the reference.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lms_api::settings::Settings;

/// Variables `lms-api` reads outside `Settings`, with the source file that reads each.
const OUTSIDE_SETTINGS: &[(&str, &str)] = &[("RUST_LOG", "src/cli.rs")];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `^[A-Z][A-Z0-9_]{2,}$`.
fn is_variable_name(text: &str) -> bool {
    text.len() >= 3
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Every name `Settings::from_lookup` asks for: once with nothing set, once with every name set
/// (to a value most readers refuse), so names read only when another is set are seen too.
fn names_looked_up() -> BTreeSet<String> {
    let seen = RefCell::new(BTreeSet::new());
    let _ = Settings::from_lookup(|name| {
        seen.borrow_mut().insert(name.to_owned());
        None
    });
    let _ = Settings::from_lookup(|name| {
        seen.borrow_mut().insert(name.to_owned());
        Some("1".to_owned())
    });
    seen.into_inner()
}

/// The string literals of a Rust source file (plain `"..."` literals; escapes skipped).
fn string_literals(source: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut chars = source.chars().peekable();
    let mut in_line_comment = false;
    let mut prev = '\0';
    while let Some(c) = chars.next() {
        if in_line_comment {
            if c == '\n' {
                in_line_comment = false;
            }
        } else if c == '/' && chars.peek() == Some(&'/') {
            in_line_comment = true;
        } else if c == '"' && prev != '\'' {
            let mut literal = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => literal.push(c),
                }
            }
            literals.push(literal);
        }
        prev = c;
    }
    literals
}

/// Every variable-like string literal in `src/settings/`.
fn names_in_settings_source() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/settings");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src/settings") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            names.extend(
                string_literals(&read(&path))
                    .into_iter()
                    .filter(|literal| is_variable_name(literal)),
            );
        }
    }
    names
}

/// Every variable the server reads.
fn known_variables() -> BTreeSet<String> {
    let mut names = names_looked_up();
    names.extend(names_in_settings_source());
    for (name, file) in OUTSIDE_SETTINGS {
        let source = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(file));
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{file} no longer reads {name}: update OUTSIDE_SETTINGS"
        );
        names.insert((*name).to_owned());
    }
    names
}

/// The backticked names in the first column of every table of the document.
fn names_in_doc_tables(doc: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in doc.lines() {
        let Some(row) = line.trim().strip_prefix('|') else {
            continue;
        };
        let first_cell = row.split('|').next().unwrap_or_default();
        for (i, part) in first_cell.split('`').enumerate() {
            // Odd parts are inside backticks.
            if i % 2 == 1 && is_variable_name(part) {
                names.insert(part.to_owned());
            }
        }
    }
    names
}

fn difference(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

#[test]
fn environment_doc_lists_exactly_the_variables_the_server_reads() {
    let read_by_code = known_variables();
    let path = repo_root().join("docs/environment.md");
    let documented = names_in_doc_tables(&read(&path));

    // The settings code really is what was scanned (not an empty set from a moved folder).
    for name in [
        "LMS_BIND",
        "DATABASE_URL",
        "MINIO_TEACHERS_BUCKET",
        "LMS_FRONTEND_ORIGINS",
    ] {
        assert!(
            read_by_code.contains(name),
            "{name} not found in the settings code"
        );
    }

    let undocumented = difference(&read_by_code, &documented);
    let unknown = difference(&documented, &read_by_code);
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/environment.md and the settings code disagree.\n  \
         read by the code but not in the tables: {undocumented:?}\n  \
         in the tables but not read by the code: {unknown:?}"
    );
}

/// The `${NAME}`, `${NAME:-default}`, `${NAME:?message}` references in a line (`$${...}` is
/// an escaped dollar, not a reference).
fn interpolated_names(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        let escaped = rest[..start].ends_with('$');
        let after = &rest[start + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if !escaped {
            names.push(after[..end].to_owned());
        }
        rest = &after[end..];
    }
    names
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The key of a `key: value` or `key:` line (`- KEY=value` list items give `KEY`).
fn key_of(line: &str) -> Option<String> {
    let trimmed = line.trim();
    if let Some(item) = trimmed.strip_prefix("- ") {
        return item
            .split_once('=')
            .map(|(key, _)| key.trim().trim_matches('"').to_owned());
    }
    trimmed
        .split_once(':')
        .map(|(key, _)| key.trim().trim_matches('"').to_owned())
}

/// The compose file's lines grouped by block: `services.<name>` for a service, the key itself
/// for any other top-level entry (such as an `x-` extension holding shared settings).
fn compose_blocks(compose: &str) -> BTreeMap<String, Vec<&str>> {
    let mut blocks: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut top = String::new();
    let mut block = String::new();
    for line in compose.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match indent(line) {
            0 => {
                top = key_of(line).unwrap_or_default();
                block = top.clone();
            }
            2 if top == "services" => {
                block = format!("services.{}", key_of(line).unwrap_or_default());
            }
            _ => {}
        }
        blocks.entry(block.clone()).or_default().push(line);
    }
    blocks
}

/// The entries of the `environment:` mappings or lists in a block: (key, line).
fn environment_entries<'a>(lines: &[&'a str]) -> Vec<(String, &'a str)> {
    let mut entries = Vec::new();
    let mut env_indent = None;
    for line in lines {
        if let Some(at) = env_indent {
            if indent(line) > at {
                if let Some(key) = key_of(line) {
                    entries.push((key, *line));
                }
                continue;
            }
            env_indent = None;
        }
        let trimmed = line.trim();
        if trimmed == "environment:" || trimmed.starts_with("environment: &") {
            env_indent = Some(indent(line));
        }
    }
    entries
}

#[test]
fn environment_doc_compose_file_sets_only_known_lms_api_variables() {
    let known = known_variables();
    let compose = read(&repo_root().join("deploy/compose.production.yml"));
    let env_example = read(&repo_root().join("deploy/.env.example"));

    let blocks = compose_blocks(&compose);
    // lms-api's blocks: the shared `x-lms-api...` extension and the services that merge it
    // in or run the lms-api image.
    let lms_blocks: Vec<&String> = blocks
        .iter()
        .filter(|(name, lines)| {
            name.starts_with("x-lms-api")
                || (name.starts_with("services.")
                    && lines.iter().any(|line| {
                        line.contains("*lms-api")
                            || (line.trim().starts_with("image:") && line.contains("lms-api"))
                    }))
        })
        .map(|(name, _)| name)
        .collect();
    for service in [
        "services.migrate",
        "services.lms-api-1",
        "services.lms-api-2",
    ] {
        assert!(
            lms_blocks.iter().any(|name| name.as_str() == service),
            "{service} is not an lms-api service in deploy/compose.production.yml"
        );
    }

    let mut problems = Vec::new();
    let mut checked = 0;
    for block in &lms_blocks {
        for (key, line) in environment_entries(&blocks[*block]) {
            checked += 1;
            if !known.contains(&key) {
                problems.push(format!("{block}: sets {key}, which lms-api does not read"));
            }
            for name in interpolated_names(line) {
                if !known.contains(&name) {
                    problems.push(format!(
                        "{block}: {key} takes ${{{name}}}, which is not an lms-api variable"
                    ));
                }
            }
        }
    }
    assert!(
        checked > 10,
        "found only {checked} lms-api variables in the compose file"
    );

    // Every variable the compose file interpolates is listed in deploy/.env.example.
    let listed: BTreeSet<&str> = env_example
        .lines()
        .map(|line| line.trim().trim_start_matches('#').trim())
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| is_variable_name(name))
        .collect();
    for line in compose.lines().filter(|line| !line.trim().starts_with('#')) {
        for name in interpolated_names(line) {
            if !listed.contains(name.as_str()) {
                problems.push(format!(
                    "${{{name}}} is used by the compose file but not listed in deploy/.env.example"
                ));
            }
        }
    }
    // And .env.example lists no lms-api-looking variable the server does not read.
    for name in &listed {
        let lms_prefix = [
            "LMS_",
            "DCS_",
            "DREAM_CENTRAL_STORAGE_",
            "MINIO_",
            "PRESIGN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix));
        if lms_prefix && !known.contains(*name) {
            problems.push(format!(
                "deploy/.env.example lists {name}, which lms-api does not read"
            ));
        }
    }

    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "deploy/compose.production.yml and deploy/.env.example:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn environment_doc_parsers_read_what_they_should() {
    assert_eq!(
        string_literals(
            r#"env.value("A_B") // "NOT_ME"
            let x = '"'; env.seconds("C_D", 1);"#
        ),
        vec!["A_B".to_owned(), "C_D".to_owned()]
    );
    assert_eq!(
        names_in_doc_tables("| `A_B` / `A_C` | `x` | uses `Z_Z` |\n|---|---|---|\ntext `Q_Q`"),
        BTreeSet::from(["A_B".to_owned(), "A_C".to_owned()])
    );
    assert_eq!(
        interpolated_names("  X: postgres://${A_B:?set it}@h/${C-d} $${NOT}"),
        vec!["A_B".to_owned(), "C".to_owned()]
    );
    assert_eq!(
        key_of("      - LMS_ENV=production"),
        Some("LMS_ENV".to_owned())
    );
    assert_eq!(
        key_of("      LMS_ENV: production"),
        Some("LMS_ENV".to_owned())
    );
}
