//! One probe over the [`HttpProbe`] port: `GET` the endpoint, follow redirects, and measure
//! the whole exchange with the monotonic timer.
//!
//! - Redirects (301, 302, 303, 307, 308 with a `Location`) are followed up to
//!   [`MAX_REDIRECTS`] hops; a further redirect fails as `too_many_redirects`. A relative
//!   `Location` resolves against the URL that answered. A 3xx without `Location` is final.
//! - The timeout covers the whole probe, every hop included: each hop gets what is left, and a
//!   probe whose final response arrives at or after the timeout fails as `timeout` (no status
//!   code: the response did not arrive in time).
//! - The response time is the whole probe's elapsed time, in whole milliseconds (rounded
//!   down), redirects included.

use std::time::Duration;

use super::url::HttpUrl;
use crate::ports::{ErrorCategory, HttpProbe, HttpResponse, MonotonicClock, TransportError};

/// The most redirects followed; one more fails the probe.
pub const MAX_REDIRECTS: u32 = 10;

/// What one probe got back.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// The URL of the final response (or of the failing request).
    pub final_url: String,
    /// Redirects followed.
    pub redirects: u32,
    /// The whole probe's duration, in milliseconds (rounded down).
    pub response_ms: u64,
    /// The final response, or why there was none.
    pub result: Result<HttpResponse, TransportError>,
}

/// Whether `status` asks the client to go elsewhere.
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Probes `url` through `http`, following redirects, within `timeout`.
pub fn fetch(
    http: &dyn HttpProbe,
    timer: &dyn MonotonicClock,
    url: &str,
    timeout: Duration,
) -> Fetched {
    let start = timer.elapsed();
    let spent = || timer.elapsed().saturating_sub(start);
    let mut current = url.to_string();
    let mut redirects = 0;
    let timed_out = || {
        TransportError::new(
            ErrorCategory::Timeout,
            format!("no complete response within {} ms", timeout.as_millis()),
        )
    };
    let result = loop {
        let left = timeout.saturating_sub(spent());
        if left.is_zero() {
            break Err(timed_out());
        }
        let response = match http.get(&current, left) {
            Ok(response) => response,
            Err(error) => break Err(error),
        };
        let location = match (&response.location, is_redirect(response.status)) {
            (Some(location), true) => location.clone(),
            _ => break Ok(response),
        };
        if redirects == MAX_REDIRECTS {
            break Err(TransportError::new(
                ErrorCategory::TooManyRedirects,
                format!("too many redirects: more than {MAX_REDIRECTS} (next was `{location}`)"),
            ));
        }
        let next = HttpUrl::parse(&current).and_then(|base| base.resolve(&location));
        let Some(next) = next else {
            break Err(TransportError::new(
                ErrorCategory::Protocol,
                format!("redirect to an invalid location `{location}`"),
            ));
        };
        redirects += 1;
        current = next.to_string();
    };
    let elapsed = spent();
    let result = match result {
        Ok(_) if elapsed >= timeout => Err(timed_out()),
        other => other,
    };
    Fetched {
        final_url: current,
        redirects,
        response_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        result,
    }
}
