//! Reading the variables: the source (`.env` under the process environment), the collector
//! of problems, and the typed accessors every section uses.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// One variable that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it (never contains a secret's value).
    pub message: String,
}

impl fmt::Display for SettingsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The `.env` file exists but could not be read or parsed.
    #[error(".env: {0}")]
    DotEnv(String),
    /// One or more variables are malformed or refused.
    #[error("invalid configuration:\n{}", render_problems(.0))]
    Invalid(Vec<SettingsProblem>),
}

impl SettingsError {
    /// The problems found in variables (empty for `.env` read errors).
    pub fn problems(&self) -> &[SettingsProblem] {
        match self {
            Self::Invalid(problems) => problems,
            Self::DotEnv(_) => &[],
        }
    }
}

fn render_problems(problems: &[SettingsProblem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The process environment layered over the variables of a `.env` file, read without modifying
/// the process environment (which is not thread-safe to change once the runtime is up).
#[derive(Default)]
pub struct EnvSource {
    dotenv: HashMap<String, String>,
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show only which names the file set.
        let mut names: Vec<&String> = self.dotenv.keys().collect();
        names.sort();
        f.debug_struct("EnvSource")
            .field("dotenv_names", &names)
            .finish()
    }
}

impl EnvSource {
    /// Reads `.env` in the working directory, if it exists.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_file(Path::new(".env"))
    }

    /// Reads the given dotenv file, if it exists.
    pub fn load_file(path: &Path) -> Result<Self, SettingsError> {
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(dotenvy::Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(err) => return Err(SettingsError::DotEnv(describe_dotenv_error(&err))),
        };
        let mut dotenv = HashMap::new();
        for item in iter {
            let (name, value) =
                item.map_err(|err| SettingsError::DotEnv(describe_dotenv_error(&err)))?;
            dotenv.insert(name, value);
        }
        Ok(Self { dotenv })
    }

    /// A variable from the process environment, else from the file.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.dotenv.get(name).cloned())
    }
}

fn describe_dotenv_error(err: &dotenvy::Error) -> String {
    match err {
        // The offending line may hold a secret: name the variable, never print the line.
        dotenvy::Error::LineParse(line, _) => {
            let name = line
                .split('=')
                .next()
                .map(str::trim)
                .map(|name| name.trim_start_matches("export ").trim())
                .filter(|name| {
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                });
            match name {
                Some(name) => format!("cannot parse the line setting {name} (line not shown)"),
                None => "cannot parse a line (line not shown)".to_owned(),
            }
        }
        dotenvy::Error::Io(io) => format!("cannot read the file: {io}"),
        dotenvy::Error::EnvVar(var) => format!("cannot read a variable: {var}"),
        _ => "cannot read the file".to_owned(),
    }
}

/// Collects problems while reading, so one run reports every bad variable.
pub(super) struct Reader<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
    pub(super) problems: Vec<SettingsProblem>,
}

impl Reader<'_> {
    pub(super) fn problem(&mut self, variable: &'static str, message: String) {
        self.problems.push(SettingsProblem { variable, message });
    }

    /// The trimmed value, `None` when unset or blank.
    pub(super) fn value(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    pub(super) fn parsed<T: FromStr>(
        &mut self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> T {
        match self.value(name) {
            None => default,
            Some(value) => value.parse().unwrap_or_else(|_| {
                self.problem(name, format!("{value:?} is not valid ({expected})"));
                default
            }),
        }
    }

    pub(super) fn seconds(&mut self, name: &'static str, default: u64) -> Duration {
        Duration::from_secs(self.positive(name, default))
    }

    pub(super) fn positive(&mut self, name: &'static str, default: u64) -> u64 {
        let value = self.parsed(name, default, "expected a whole number greater than 0");
        if value == 0 {
            self.problem(name, "must be greater than 0".to_owned());
            return default;
        }
        value
    }

    pub(super) fn boolean(&mut self, name: &'static str, default: bool) -> bool {
        match self.value(name) {
            None => default,
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.problem(
                        name,
                        format!("{value:?} is not valid (expected true or false)"),
                    );
                    default
                }
            },
        }
    }

    pub(super) fn http_url(&mut self, name: &'static str, default: &str) -> Url {
        self.optional_http_url(name)
            .unwrap_or_else(|| Url::parse(default).expect("default URLs are valid"))
    }

    pub(super) fn optional_http_url(&mut self, name: &'static str) -> Option<Url> {
        let value = self.value(name)?;
        // A value with userinfo may carry a password: describe it without echoing it.
        let shown = if value.contains('@') {
            "the value".to_owned()
        } else {
            format!("{value:?}")
        };
        match Url::parse(&value) {
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                self.problem(
                    name,
                    "must not contain credentials (they have their own variables)".to_owned(),
                );
                None
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            Ok(_) => {
                self.problem(
                    name,
                    format!("{shown} is not an http:// or https:// URL with a host"),
                );
                None
            }
            Err(err) => {
                self.problem(name, format!("{shown} is not a valid URL ({err})"));
                None
            }
        }
    }

    pub(super) fn bucket(&mut self, name: &'static str, default: &str) -> String {
        let Some(value) = self.value(name) else {
            return default.to_owned();
        };
        let valid = (3..=63).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            self.problem(
                name,
                format!(
                    "{value:?} is not a valid bucket name (3-63 lowercase letters, digits, '-' or '.')"
                ),
            );
            return default.to_owned();
        }
        value
    }

    /// A secret that falls back to a development value locally and must be set to something
    /// else in production. Messages name the variable, never the value.
    pub(super) fn secret_with_dev_default(
        &mut self,
        name: &'static str,
        dev_default: &str,
        production: bool,
    ) -> SecretString {
        match self.value(name) {
            None if production => {
                self.problem(
                    name,
                    "must be set to a non-empty secret when LMS_ENV=production".to_owned(),
                );
                SecretString::from(String::new())
            }
            None => SecretString::from(dev_default.to_owned()),
            Some(value) if production && value == dev_default => {
                self.problem(
                    name,
                    "must not use the development default when LMS_ENV=production".to_owned(),
                );
                SecretString::from(value)
            }
            Some(value) => SecretString::from(value),
        }
    }
}
