//! The Prometheus text endpoint (`--metrics-addr`): `GET /metrics` while the pipeline runs.
//!
//! A plain HTTP/1.1 responder on `std::net`, written here rather than pulling in an HTTP stack:
//! it answers one small GET per connection, which is all a Prometheus scrape is.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// Binds the address before anything runs, so a taken port fails the run at start-up.
pub(crate) fn bind(addr: std::net::SocketAddr) -> crate::Result<TcpListener> {
    let listener = TcpListener::bind(addr).map_err(|e| {
        crate::Error::Config(format!(
            "cannot serve metrics on {addr} (--metrics-addr): {e}"
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| crate::Error::Config(format!("cannot serve metrics on {addr}: {e}")))?;
    Ok(listener)
}

/// Answers scrapes until `done`.
pub(crate) fn serve(
    listener: TcpListener,
    metrics: &(dyn Fn() -> String + Sync),
    done: &AtomicBool,
) {
    while !done.load(Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(error) = answer(stream, metrics) {
                    tracing::debug!("metrics request failed: {error}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => {
                tracing::warn!("metrics endpoint: {error}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn answer(stream: TcpStream, metrics: &(dyn Fn() -> String + Sync)) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers (a scrape has no body).
    let mut line = String::new();
    let mut read = 0;
    while reader.read_line(&mut line)? > 0 && line.trim_end() != "" && read < 64 {
        line.clear();
        read += 1;
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => ("200 OK", metrics()),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "not found: metrics are at /metrics\n".to_owned(),
        ),
        _ => ("405 Method Not Allowed", "only GET\n".to_owned()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}
