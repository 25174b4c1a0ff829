//! Just enough URL handling for probes: split an absolute `http(s)` URL into scheme, authority
//! and path-with-query, and resolve a redirect's `Location` against the URL it came from
//! (RFC 3986 section 5.2, fragments dropped). Kept here, dependency-free, because the engine
//! and the component both need it and nothing more.

/// An absolute `http` or `https` URL, split for a request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `http` or `https`, lower case.
    pub scheme: String,
    /// `host`, `host:port` or `user@host:port`, as written.
    pub authority: String,
    /// The path (at least `/`) and the query, without the fragment.
    pub path_and_query: String,
}

impl HttpUrl {
    /// Parses an absolute `http://` or `https://` URL with a non-empty authority.
    pub fn parse(text: &str) -> Option<HttpUrl> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() || authority.chars().any(char::is_whitespace) {
            return None;
        }
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Some(HttpUrl {
            scheme,
            authority: authority.to_string(),
            path_and_query,
        })
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or_default()
    }

    /// Resolves `reference` (a `Location` header) against this URL. `None` when the result
    /// is not an `http(s)` URL.
    pub fn resolve(&self, reference: &str) -> Option<HttpUrl> {
        let reference = reference.trim();
        let reference = reference.split('#').next().unwrap_or_default();
        if has_scheme(reference) {
            return HttpUrl::parse(reference);
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return HttpUrl::parse(&format!("{}://{rest}", self.scheme));
        }
        if reference.is_empty() {
            return Some(self.clone());
        }
        let (path, query) = match reference.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (reference, None),
        };
        let mut path_and_query = if path.is_empty() {
            self.path().to_string()
        } else if path.starts_with('/') {
            remove_dot_segments(path)
        } else {
            let base = self.path();
            let directory = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            remove_dot_segments(&format!("{directory}{path}"))
        };
        if let Some(query) = query {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Some(HttpUrl {
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            path_and_query,
        })
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme, self.authority, self.path_and_query
        )
    }
}

/// Whether `reference` starts with `scheme:` (RFC 3986: a letter, then letters, digits,
/// `+`, `-` or `.`).
fn has_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !scheme.contains('/')
}

/// Removes `.` and `..` segments from an absolute path (RFC 3986 section 5.2.4).
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = index == last,
            ".." => {
                output.pop();
                trailing_slash = index == last;
            }
            other => {
                output.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::from("/");
    result.push_str(&output.join("/"));
    if trailing_slash && !result.ends_with('/') {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HttpUrl {
        HttpUrl::parse("http://127.0.0.1:8080/a/b/c?x=1#frag").unwrap()
    }

    #[test]
    fn parsing_splits_scheme_authority_and_path() {
        let url = base();
        assert_eq!(url.scheme, "http");
        assert_eq!(url.authority, "127.0.0.1:8080");
        assert_eq!(url.path_and_query, "/a/b/c?x=1");
        assert_eq!(
            HttpUrl::parse("HTTPS://h?q").unwrap().to_string(),
            "https://h/?q"
        );
        for bad in ["ftp://h/", "http://", "h/p", "http:///p"] {
            assert_eq!(HttpUrl::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn relative_locations_resolve_against_the_current_url() {
        let cases = [
            ("/root", "http://127.0.0.1:8080/root"),
            ("d", "http://127.0.0.1:8080/a/b/d"),
            ("../d?y=2", "http://127.0.0.1:8080/a/d?y=2"),
            ("./", "http://127.0.0.1:8080/a/b/"),
            ("../../../../up", "http://127.0.0.1:8080/up"),
            ("?y=2", "http://127.0.0.1:8080/a/b/c?y=2"),
            ("", "http://127.0.0.1:8080/a/b/c?x=1"),
            ("//other:9/p", "http://other:9/p"),
            ("https://h.test/x#f", "https://h.test/x"),
        ];
        for (reference, expected) in cases {
            let resolved = base().resolve(reference).unwrap();
            assert_eq!(resolved.to_string(), expected, "{reference}");
        }
        assert_eq!(base().resolve("ftp://h/x"), None);
        assert_eq!(base().resolve("mailto:x@y"), None);
    }
}
