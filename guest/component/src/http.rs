//! Outbound HTTP for health probes, over the raw `wasi:http` outgoing handler (`wasip2`).
//!
//! One `GET` per call, no redirects followed (the engine follows them). The request body is
//! empty and finished before `handle`. The whole exchange, body included, runs against one
//! deadline on WASI's monotonic clock; the connect, first-byte and between-bytes timeouts of
//! the request options are set to the same budget (the host may shorten them). At most
//! [`MAX_PROBE_BODY`] bytes of the body are read. Failures become a [`TransportError`] with a
//! category and never a status code: `HTTP-request-denied` (the host refused the destination)
//! is `denied`.

use std::time::Duration;

use infra_engine::monitor::url::HttpUrl;
use infra_engine::ports::{ErrorCategory, HttpProbe, HttpResponse, TransportError, MAX_PROBE_BODY};
use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::poll::{self, Pollable};
use wasip2::io::streams::StreamError;

/// The most bytes asked for in one body read.
const READ_CHUNK: u64 = 16 * 1024;

/// The `User-Agent` of probes.
const USER_AGENT: &[u8] = b"rusvel-infra-monitor/0.1";

/// Outbound HTTP through the `wasi:http/outgoing-handler` import.
pub struct WasiHttp;

impl HttpProbe for WasiHttp {
    fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, TransportError> {
        let target = HttpUrl::parse(url).ok_or_else(|| {
            TransportError::new(
                ErrorCategory::Other,
                format!("`{url}` is not an http(s) URL"),
            )
        })?;
        let budget = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let deadline = monotonic_clock::now().saturating_add(budget);
        let request = build_request(&target)?;
        let options = RequestOptions::new();
        // The host may refuse or shorten these; the deadline below holds regardless.
        let _ = options.set_connect_timeout(Some(budget));
        let _ = options.set_first_byte_timeout(Some(budget));
        let _ = options.set_between_bytes_timeout(Some(budget));
        let future = outgoing_handler::handle(request, Some(options)).map_err(transport_error)?;
        let ready = future.subscribe();
        if !wait(&ready, deadline) {
            return Err(timed_out(timeout));
        }
        drop(ready);
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(transport_error(code)),
            Some(Err(())) | None => {
                return Err(TransportError::new(
                    ErrorCategory::Other,
                    "the response was not available",
                ))
            }
        };
        drop(future);
        let status = response.status();
        let headers = response.headers();
        let location = headers
            .get("location")
            .into_iter()
            .next()
            .map(|value| String::from_utf8_lossy(&value).into_owned());
        drop(headers);
        let body = response.consume().map_err(|()| {
            TransportError::new(ErrorCategory::Other, "the response body was already taken")
        })?;
        let read = read_body(&body, deadline, timeout);
        drop(body);
        drop(response);
        let (body, body_truncated) = read?;
        Ok(HttpResponse {
            status,
            location,
            body,
            body_truncated,
        })
    }
}

/// A `GET` of `target` with an empty, finished body.
fn build_request(target: &HttpUrl) -> Result<OutgoingRequest, TransportError> {
    let invalid = |what: &str| {
        TransportError::new(
            ErrorCategory::Other,
            format!("the request {what} was refused"),
        )
    };
    let headers = Fields::from_list(&[("user-agent".to_string(), USER_AGENT.to_vec())])
        .map_err(|_| invalid("headers"))?;
    let request = OutgoingRequest::new(headers);
    request
        .set_method(&Method::Get)
        .map_err(|()| invalid("method"))?;
    let scheme = if target.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(&target.path_and_query))
        .map_err(|()| invalid("path"))?;
    let body = request.body().map_err(|()| invalid("body"))?;
    OutgoingBody::finish(body, None).map_err(transport_error)?;
    Ok(request)
}

/// Reads the body up to the cap; returns the bytes and whether more were left.
fn read_body(
    body: &IncomingBody,
    deadline: u64,
    timeout: Duration,
) -> Result<(Vec<u8>, bool), TransportError> {
    let stream = body.stream().map_err(|()| {
        TransportError::new(ErrorCategory::Other, "the response body stream was taken")
    })?;
    let mut bytes = Vec::new();
    let result = loop {
        // One byte more than the room left tells whether the body is longer than the cap.
        let room = (MAX_PROBE_BODY - bytes.len()) as u64 + 1;
        match stream.read(room.min(READ_CHUNK)) {
            Ok(chunk) if chunk.is_empty() => {
                let ready = stream.subscribe();
                if !wait(&ready, deadline) {
                    break Err(timed_out(timeout));
                }
            }
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_PROBE_BODY {
                    bytes.truncate(MAX_PROBE_BODY);
                    break Ok(true);
                }
            }
            Err(StreamError::Closed) => break Ok(false),
            Err(StreamError::LastOperationFailed(error)) => {
                break Err(match wasip2::http::types::http_error_code(&error) {
                    Some(code) => transport_error(code),
                    None => TransportError::new(
                        ErrorCategory::Protocol,
                        format!("reading the body failed: {}", error.to_debug_string()),
                    ),
                })
            }
        }
    };
    drop(stream);
    result.map(|truncated| (bytes, truncated))
}

/// Waits until `ready` fires or the monotonic clock reaches `deadline`; whether it fired.
fn wait(ready: &Pollable, deadline: u64) -> bool {
    let timer = monotonic_clock::subscribe_instant(deadline);
    poll::poll(&[ready, &timer]).contains(&0)
}

fn timed_out(timeout: Duration) -> TransportError {
    TransportError::new(
        ErrorCategory::Timeout,
        format!("no complete response within {} ms", timeout.as_millis()),
    )
}

/// A `wasi:http` error code as a category and a message.
fn transport_error(code: ErrorCode) -> TransportError {
    use ErrorCategory as C;
    let category = match &code {
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => C::Dns,
        ErrorCode::ConnectionRefused
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable => C::ConnectionRefused,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => C::Timeout,
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => C::Tls,
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => C::Denied,
        ErrorCode::ConnectionTerminated
        | ErrorCode::HttpProtocolError
        | ErrorCode::HttpResponseIncomplete
        | ErrorCode::HttpResponseHeaderSectionSize(_)
        | ErrorCode::HttpResponseHeaderSize(_)
        | ErrorCode::HttpResponseBodySize(_)
        | ErrorCode::HttpResponseTrailerSectionSize(_)
        | ErrorCode::HttpResponseTrailerSize(_)
        | ErrorCode::HttpResponseTransferCoding(_)
        | ErrorCode::HttpResponseContentCoding(_)
        | ErrorCode::HttpUpgradeFailed
        | ErrorCode::LoopDetected => C::Protocol,
        _ => C::Other,
    };
    let message = match &code {
        ErrorCode::HttpRequestDenied => {
            "the host refused the destination (not in allow_outbound)".to_string()
        }
        ErrorCode::InternalError(Some(detail)) => format!("internal error: {detail}"),
        other => format!("{other:?}").replace("ErrorCode::", ""),
    };
    TransportError::new(category, message)
}
