//! Fault injection and request counting, matched by method and path prefix.

use std::collections::HashMap;
use std::time::Duration;

use http::Method;

/// A misbehaviour to inject on matching requests (see [`MockDcs::inject`](crate::MockDcs::inject)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally, but only after this delay. It adds up with any other matching fault,
    /// so latency followed by a status is possible.
    Latency(Duration),
    /// Answer with this status and a FastAPI-style body, `{"detail": "<reason phrase>"}`.
    Status(u16),
    /// Answer `429 {"detail": "Too Many Requests"}` with this `Retry-After` value (seconds or an
    /// HTTP date).
    TooManyRequests { retry_after: String },
    /// Close the connection without answering.
    Reset,
    /// Answer `200` with a JSON content type and a body that is not valid JSON.
    Malformed,
}

/// `"GET /books/"`, `"* /storage/"` or `"/publishers/"`: an optional method (`*` = any) and a
/// path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoutePattern {
    method: Option<Method>,
    prefix: String,
}

impl RoutePattern {
    pub(crate) fn parse(route: &str) -> Result<Self, String> {
        let route = route.trim();
        let (method, prefix) = match route.split_once(char::is_whitespace) {
            Some((method, prefix)) => (Some(method), prefix.trim()),
            None => (None, route),
        };
        if !prefix.starts_with('/') {
            return Err(format!(
                "invalid route {route:?}: expected \"METHOD /path-prefix\", \"* /path-prefix\" or \"/path-prefix\""
            ));
        }
        let method = match method {
            None | Some("*") => None,
            Some(name) => Some(
                Method::from_bytes(name.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("invalid method {name:?} in route {route:?}"))?,
            ),
        };
        Ok(RoutePattern {
            method,
            prefix: prefix.to_owned(),
        })
    }

    /// Matches against the raw request path or its percent-decoded form, so both
    /// `/storage/books/Dream%20Press/` and `/storage/books/Dream Press/` work.
    pub(crate) fn matches(&self, method: &Method, raw_path: &str, decoded_path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && (raw_path.starts_with(&self.prefix) || decoded_path.starts_with(&self.prefix))
    }
}

#[derive(Debug)]
struct FaultRule {
    pattern: RoutePattern,
    fault: Fault,
    /// `None` = until cleared.
    remaining: Option<u32>,
}

/// What to do with one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultPlan {
    pub(crate) latency: Duration,
    /// A fault that replaces the answer (anything but latency).
    pub(crate) action: Option<Fault>,
}

#[derive(Debug, Default)]
pub(crate) struct FaultList {
    rules: Vec<FaultRule>,
}

impl FaultList {
    pub(crate) fn add(&mut self, pattern: RoutePattern, fault: Fault, times: Option<u32>) {
        if times == Some(0) {
            return;
        }
        self.rules.push(FaultRule {
            pattern,
            fault,
            remaining: times,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// Consumes the faults that apply to this request, in the order they were injected:
    /// every matching latency adds up, and the first other fault ends the search.
    pub(crate) fn take(
        &mut self,
        method: &Method,
        raw_path: &str,
        decoded_path: &str,
    ) -> FaultPlan {
        let mut plan = FaultPlan::default();
        for rule in &mut self.rules {
            if !rule.pattern.matches(method, raw_path, decoded_path) {
                continue;
            }
            if let Some(remaining) = rule.remaining.as_mut() {
                *remaining -= 1;
            }
            match &rule.fault {
                Fault::Latency(delay) => plan.latency += *delay,
                other => {
                    plan.action = Some(other.clone());
                    break;
                }
            }
        }
        self.rules.retain(|rule| rule.remaining != Some(0));
        plan
    }
}

/// Requests that reached the server (control routes excluded), counted per method and path
/// so a long-running mock does not grow with traffic.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    /// (method, raw path) -> (decoded path, count).
    counts: HashMap<(Method, String), (String, usize)>,
}

impl RequestLog {
    pub(crate) fn record(&mut self, method: &Method, raw_path: &str, decoded_path: &str) {
        self.counts
            .entry((method.clone(), raw_path.to_owned()))
            .or_insert_with(|| (decoded_path.to_owned(), 0))
            .1 += 1;
    }

    pub(crate) fn count(&self, pattern: &RoutePattern) -> usize {
        self.counts
            .iter()
            .filter(|((method, raw), (decoded, _))| pattern.matches(method, raw, decoded))
            .map(|(_, (_, count))| count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(route: &str) -> RoutePattern {
        RoutePattern::parse(route).unwrap()
    }

    #[test]
    fn patterns_parse_method_and_prefix() {
        assert!(pattern("GET /books/").matches(&Method::GET, "/books/1", "/books/1"));
        assert!(!pattern("GET /books/").matches(&Method::PUT, "/books/1", "/books/1"));
        assert!(pattern("* /books/").matches(&Method::DELETE, "/books/1", "/books/1"));
        assert!(pattern("/books/").matches(&Method::POST, "/books/batch", "/books/batch"));
        assert!(pattern("get /storage/books/Dream Press/").matches(
            &Method::GET,
            "/storage/books/Dream%20Press/FLOWDEMO",
            "/storage/books/Dream Press/FLOWDEMO"
        ));
        assert!(RoutePattern::parse("GET books").is_err());
        assert!(RoutePattern::parse("G\u{e9}T /books").is_err());
    }

    #[test]
    fn limited_faults_disappear_after_their_uses() {
        let mut faults = FaultList::default();
        faults.add(pattern("GET /books/"), Fault::Status(503), Some(2));
        let take = |faults: &mut FaultList| faults.take(&Method::GET, "/books/", "/books/").action;
        assert_eq!(take(&mut faults), Some(Fault::Status(503)));
        assert_eq!(take(&mut faults), Some(Fault::Status(503)));
        assert_eq!(take(&mut faults), None);
    }

    #[test]
    fn latency_adds_up_and_combines_with_a_status() {
        let mut faults = FaultList::default();
        faults.add(pattern("/"), Fault::Latency(Duration::from_millis(5)), None);
        faults.add(
            pattern("GET /"),
            Fault::Latency(Duration::from_millis(7)),
            Some(1),
        );
        faults.add(pattern("GET /books/"), Fault::Reset, None);
        faults.add(pattern("GET /books/"), Fault::Status(500), None);
        let plan = faults.take(&Method::GET, "/books/", "/books/");
        assert_eq!(plan.latency, Duration::from_millis(12));
        assert_eq!(plan.action, Some(Fault::Reset));
        let plan = faults.take(&Method::GET, "/health", "/health");
        assert_eq!(
            plan,
            FaultPlan {
                latency: Duration::from_millis(5),
                action: None
            }
        );
        faults.add(pattern("/"), Fault::Malformed, Some(0));
        assert_eq!(faults.take(&Method::GET, "/x", "/x").action, None);
        faults.clear();
        assert_eq!(
            faults.take(&Method::GET, "/books/", "/books/"),
            FaultPlan::default()
        );
    }
}
