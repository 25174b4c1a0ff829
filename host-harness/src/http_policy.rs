//! Outbound HTTP policy: which destinations a plugin may reach through `wasi:http`.
//!
//! A rule is `scheme://host:port`, where the port may be `*` (any port) or left out (the
//! scheme's default port). Hosts compare case-insensitively and exactly; there is no host
//! wildcard, so allowing a name never allows its subdomains. Everything not allowed is
//! refused with `HTTP-request-denied` and a `warn` log naming plugin and destination.
//!
//! Allowed requests always run under host timeouts, whatever the guest asked for: connect
//! at most [`CONNECT_TIMEOUT`], first byte and gaps between body bytes at most
//! [`READ_TIMEOUT`], and the whole request up to response headers at most [`TOTAL_TIMEOUT`].

use std::future::Future;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Longest wait for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for the first response byte and between body bytes.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait from sending a request to its response headers.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

/// One allowed destination pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRule {
    scheme: String,
    host: String,
    /// `None` is the `*` wildcard.
    port: Option<u16>,
}

impl OutboundRule {
    /// Parses `scheme://host:port`, `scheme://host:*` or `scheme://host`.
    pub fn parse(pattern: &str) -> Result<OutboundRule, String> {
        let invalid = |why: &str| format!("outbound rule `{pattern}` is invalid: {why}");
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or_else(|| invalid("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(invalid("scheme must be http or https")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(invalid("expected only host and port after the scheme"));
        }
        // An IPv6 literal keeps its brackets, as `Uri::host` reports it: `[::1]:8080`.
        let (host, port_text) = match rest.strip_prefix('[') {
            Some(inner) => {
                let (address, after) = inner
                    .split_once(']')
                    .ok_or_else(|| invalid("unclosed IPv6 bracket"))?;
                if address.is_empty() {
                    return Err(invalid("empty IPv6 brackets"));
                }
                let port = match after {
                    "" => None,
                    _ => Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| invalid("only `:port` may follow `]`"))?,
                    ),
                };
                (&rest[..address.len() + 2], port)
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        let port = match port_text {
            None => Some(default_port),
            Some("*") => None,
            Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                match text.parse::<u16>() {
                    Ok(port) if port > 0 => Some(port),
                    _ => return Err(invalid("port must be 1-65535 or *")),
                }
            }
            Some(_) => return Err(invalid("port must be 1-65535 or *")),
        };
        // A host is a DNS name, an IPv4 address, or a bracketed IPv6 literal: nothing that a
        // URL would read as something else (`?`, `#`, `%`, `\`, spaces) and no wildcards.
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
        let valid_host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.'),
            None => !host.is_empty() && host.chars().all(plain),
        };
        if !valid_host {
            return Err(invalid(
                "host must be a name or an address, without wildcards",
            ));
        }
        Ok(OutboundRule {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether this rule allows `scheme://host:port`.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
            && self.host.eq_ignore_ascii_case(host)
            && self.port.is_none_or(|allowed| allowed == port)
    }
}

/// The outbound policy of one plugin; installed as its `wasi:http` hooks.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    plugin_id: String,
    rules: Vec<OutboundRule>,
}

impl OutboundPolicy {
    /// A policy for `plugin_id` from its sidecar patterns (already validated).
    pub fn new(plugin_id: &str, patterns: &[String]) -> Result<OutboundPolicy, String> {
        let rules = patterns
            .iter()
            .map(|p| OutboundRule::parse(p))
            .collect::<Result<_, _>>()?;
        Ok(OutboundPolicy {
            plugin_id: plugin_id.to_string(),
            rules,
        })
    }

    /// A policy that refuses everything.
    pub fn deny_all(plugin_id: &str) -> OutboundPolicy {
        OutboundPolicy {
            plugin_id: plugin_id.to_string(),
            rules: Vec::new(),
        }
    }

    /// Renames the plugin in log lines (the id is known only after the manifest is read).
    pub fn set_plugin_id(&mut self, plugin_id: &str) {
        self.plugin_id = plugin_id.to_string();
    }

    /// Whether the policy allows a request to `uri`.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some((scheme, host, port)) = destination(uri) else {
            return false;
        };
        self.rules
            .iter()
            .any(|rule| rule.allows(scheme, host, port))
    }
}

/// Scheme, host and effective port of a request URI.
fn destination(uri: &http::Uri) -> Option<(&str, &str, u16)> {
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    let port = uri.port_u16().or(match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    // `Uri::host` keeps the brackets of an IPv6 literal; rules are written the same way.
    Some((scheme, host, port))
}

/// Guest timeouts, clamped to the host's.
fn clamp(options: Option<RequestOptions>) -> RequestOptions {
    let options = options.unwrap_or_default();
    let cap = |asked: Option<Duration>, cap: Duration| Some(asked.map_or(cap, |d| d.min(cap)));
    RequestOptions {
        connect_timeout: cap(options.connect_timeout, CONNECT_TIMEOUT),
        first_byte_timeout: cap(options.first_byte_timeout, READ_TIMEOUT),
        between_bytes_timeout: cap(options.between_bytes_timeout, READ_TIMEOUT),
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type ResponseFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: IoFuture,
    ) -> ResponseFuture {
        if !self.allows(request.uri()) {
            tracing::warn!(
                plugin = %self.plugin_id,
                destination = %request.uri(),
                "outbound HTTP request denied: destination not in allow_outbound"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        tracing::debug!(plugin = %self.plugin_id, destination = %request.uri(), "outbound HTTP");
        let options = clamp(options);
        Box::new(async move {
            let sent = tokio::time::timeout(
                TOTAL_TIMEOUT,
                wasmtime_wasi_http::default_send_request(request, Some(options)),
            )
            .await
            .map_err(|_| HttpError::HttpResponseTimeout)?;
            let (response, io) = sent?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }

    // The guest receives these failures as error codes; they are the destination's problem,
    // not the host's, so they are logged at debug with the plugin id.
    fn p2_error_from_connect(&mut self, error: &std::io::Error) -> ErrorCode {
        tracing::debug!(plugin = %self.plugin_id, %error, "outbound HTTP connect failed");
        ErrorCode::ConnectionRefused
    }

    fn p2_error_from_hyper(&mut self, error: &hyper::Error) -> ErrorCode {
        tracing::debug!(plugin = %self.plugin_id, %error, "outbound HTTP protocol error");
        ErrorCode::HttpProtocolError
    }

    fn p2_error_from_tls(&mut self, error: &std::io::Error) -> ErrorCode {
        tracing::debug!(plugin = %self.plugin_id, %error, "outbound HTTPS handshake failed");
        ErrorCode::TlsProtocolError
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> OutboundPolicy {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        OutboundPolicy::new("infra", &patterns).unwrap()
    }

    fn allows(policy: &OutboundPolicy, uri: &str) -> bool {
        policy.allows(&uri.parse().unwrap())
    }

    #[test]
    fn a_port_wildcard_allows_every_port_of_that_host_and_scheme_only() {
        let policy = policy(&["http://127.0.0.1:*"]);
        assert!(allows(&policy, "http://127.0.0.1:8080/health"));
        assert!(allows(&policy, "http://127.0.0.1/health"));
        assert!(!allows(&policy, "https://127.0.0.1:8080/health"));
        assert!(!allows(&policy, "http://127.0.0.2:8080/health"));
        assert!(!allows(&policy, "http://localhost:8080/health"));
    }

    #[test]
    fn an_exact_port_or_the_default_port_must_match() {
        let policy = policy(&["http://127.0.0.1:9000", "https://status.example.com"]);
        assert!(allows(&policy, "http://127.0.0.1:9000/"));
        assert!(!allows(&policy, "http://127.0.0.1:9001/"));
        assert!(allows(&policy, "https://STATUS.example.com/"));
        assert!(allows(&policy, "https://status.example.com:443/"));
        assert!(!allows(&policy, "https://evil.status.example.com/"));
    }

    #[test]
    fn no_rules_deny_everything() {
        assert!(!allows(
            &OutboundPolicy::deny_all("infra"),
            "http://127.0.0.1:80/"
        ));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for pattern in [
            "127.0.0.1:80",
            "ftp://host:21",
            "http://*.example.com",
            "http://h:x",
            "http://h/path",
            "http://",
            "http://[::1]garbage",
            "http://[::1]8080",
            "http://[]:80",
            "http://127.0.0.1:80:*",
            "http://127.0.0.1?x",
            "http://127.0.0.1#x",
            "http://ho st:80",
            "http://127.0.0.1\\:80",
            "http://%31%32%37.0.0.1:*",
            "http://127.0.0.1:+80",
            "http://127.0.0.1:0",
        ] {
            assert!(OutboundRule::parse(pattern).is_err(), "{pattern}");
        }
        let ipv6 = policy(&["http://[::1]:*"]);
        assert!(allows(&ipv6, "http://[::1]:8080/"));
        assert!(!allows(&ipv6, "http://[::2]:8080/"));
    }

    #[test]
    fn guest_timeouts_are_clamped_to_the_host_caps() {
        let asked = RequestOptions {
            connect_timeout: Some(Duration::from_secs(600)),
            first_byte_timeout: Some(Duration::from_millis(10)),
            between_bytes_timeout: None,
        };
        let clamped = clamp(Some(asked));
        assert_eq!(clamped.connect_timeout, Some(CONNECT_TIMEOUT));
        assert_eq!(clamped.first_byte_timeout, Some(Duration::from_millis(10)));
        assert_eq!(clamped.between_bytes_timeout, Some(READ_TIMEOUT));
        assert_eq!(clamp(None).connect_timeout, Some(CONNECT_TIMEOUT));
    }
}
