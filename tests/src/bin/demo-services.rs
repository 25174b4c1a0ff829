//! Three services on loopback for the demo: one healthy, one slow, one failing.
//!
//! Prints the base URL on its first line of output, then serves until `--seconds` have passed
//! (default 300), so a forgotten demo server never outlives its purpose.

use std::time::Duration;

use integration_tests::http_fixture::{HttpFixture, Route};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .skip_while(|arg| arg != "--seconds")
        .nth(1)
        .map(|value| value.parse())
        .transpose()?
        .unwrap_or(300);

    let server = HttpFixture::start(vec![
        ("/healthy", Route::status(200, "{\"status\":\"ok\"}")),
        (
            "/slow",
            Route::slow(Duration::from_millis(400), "{\"status\":\"ok\"}"),
        ),
        (
            "/failing",
            Route::status(503, "{\"status\":\"unavailable\"}"),
        ),
    ])
    .await?;
    println!("{}", server.url(""));

    tokio::time::sleep(Duration::from_secs(seconds)).await;
    Ok(())
}
