//! A small HTTP/1.1 server on loopback for probe tests and the demo.
//!
//! Every route is fixed at start-up: a status, an optional delay, a body and optional headers.
//! The server answers one request per connection (`Connection: close`), which is all a health
//! probe needs and keeps the behaviour easy to reason about. Requests for unknown paths get 404.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the server answers on one path.
#[derive(Clone, Debug)]
pub struct Route {
    /// HTTP status code to send.
    pub status: u16,
    /// How long to wait before answering.
    pub delay: Duration,
    /// Response body.
    pub body: String,
    /// Extra headers, for example `Location` for redirects.
    pub headers: Vec<(String, String)>,
}

impl Route {
    /// A route answering `status` at once with `body`.
    pub fn status(status: u16, body: &str) -> Self {
        Route {
            status,
            delay: Duration::ZERO,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// A route answering 200 with `body` after `delay`.
    pub fn slow(delay: Duration, body: &str) -> Self {
        Route {
            delay,
            ..Route::status(200, body)
        }
    }

    /// A `302 Found` pointing at `location`.
    pub fn redirect(location: &str) -> Self {
        let mut route = Route::status(302, "");
        route
            .headers
            .push(("Location".to_string(), location.to_string()));
        route
    }
}

/// A chain of `hops` redirects: `/<prefix>/0` -> `/<prefix>/1` -> ... -> `/<prefix>/<hops-1>`
/// -> `target`. Every hop but the first uses a relative `Location` (`<n>`, resolved against
/// `/<prefix>/...`), so the chain also exercises relative resolution. Serve with
/// [`HttpFixture::start_owned`].
pub fn redirect_chain(prefix: &str, hops: usize, target: &str) -> Vec<(String, Route)> {
    (0..hops)
        .map(|hop| {
            let location = if hop + 1 == hops {
                target.to_string()
            } else {
                format!("{}", hop + 1)
            };
            (format!("/{prefix}/{hop}"), Route::redirect(&location))
        })
        .collect()
}

/// A redirect loop between `/<prefix>/a` and `/<prefix>/b`; it never ends.
pub fn redirect_loop(prefix: &str) -> Vec<(String, Route)> {
    vec![
        (
            format!("/{prefix}/a"),
            Route::redirect(&format!("/{prefix}/b")),
        ),
        (format!("/{prefix}/b"), Route::redirect("a")),
    ]
}

/// A running fixture server; it stops when dropped.
pub struct HttpFixture {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl HttpFixture {
    /// Starts a server on `127.0.0.1` with an OS-chosen port serving `routes`.
    pub async fn start(routes: Vec<(&str, Route)>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::serve(listener, routes)
    }

    /// Starts a server on `127.0.0.1` serving routes with owned paths.
    pub async fn start_owned(routes: Vec<(String, Route)>) -> std::io::Result<Self> {
        let routes: Vec<(&str, Route)> = routes
            .iter()
            .map(|(path, route)| (path.as_str(), route.clone()))
            .collect();
        HttpFixture::start(routes).await
    }

    /// Starts a server on an already bound listener.
    pub fn serve(listener: TcpListener, routes: Vec<(&str, Route)>) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let routes: Arc<HashMap<String, Route>> = Arc::new(
            routes
                .into_iter()
                .map(|(path, route)| (path.to_string(), route))
                .collect(),
        );
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(answer(stream, routes.clone()));
            }
        });
        Ok(HttpFixture { addr, hits, task })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the server accepted so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head and writes the route's answer.
async fn answer(mut stream: tokio::net::TcpStream, routes: Arc<HashMap<String, Route>>) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let route = routes
        .get(&path)
        .cloned()
        .unwrap_or_else(|| Route::status(404, "not found"));

    if !route.delay.is_zero() {
        tokio::time::sleep(route.delay).await;
    }
    let mut response = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n",
        route.status,
        reason(route.status),
        route.body.len()
    );
    for (name, value) in &route.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&route.body);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
