//! The Prometheus text endpoint (`--metrics-addr`): `GET /metrics` while the pipeline runs.
//!
//! HTTP/1.1 from hyper, on a current-thread tokio runtime that [`serve`] drives on the thread the
//! executor gives the endpoint. Every connection is a future of its own, polled concurrently on
//! that thread, so a slow or hostile client never holds up a scrape; each has its request head
//! bounded in size ([`MAX_HEAD_BYTES`]) and in time ([`HEAD_TIMEOUT`]), and its whole life bounded
//! too ([`CONNECTION_TIMEOUT`]). The connections borrow the caller's `metrics` closure, which is
//! why they are not spawned as tasks (those must be `'static`) but kept in a `FuturesUnordered`
//! that the accept loop polls alongside the listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::time::{Instant, MissedTickBehavior};

/// The most a request head (request line and headers) may take; past it hyper answers 431 and
/// closes the connection, so a client sending a line without end costs at most this much memory.
/// A scrape's head is a few hundred bytes. (8 KiB is hyper's least.)
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A client must have sent its whole request head within this time of connecting.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection is closed this long after it was accepted, whatever it is doing (for one that
/// reads its response slowly, or sends a body without end).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many connections are open at once; further ones wait in the listen backlog until
/// one closes, which [`HEAD_TIMEOUT`] and [`CONNECTION_TIMEOUT`] make happen within seconds.
/// Without a cap, a client opening connections without end would use up the process's file
/// descriptors (commonly 1024), and the pipeline's own sources and sinks would fail to open
/// files. Each open connection holds at most about [`MAX_HEAD_BYTES`] plus a response, so the cap
/// also bounds the endpoint's memory to a few MiB. A Prometheus server scrapes over one
/// connection at a time, so 256 leaves room for many scrapers next to many idle clients; a client
/// that holds more than 256 connections can delay a scrape (queued behind its connections) by
/// about [`HEAD_TIMEOUT`] per 256 of them, not block it.
const MAX_CONNECTIONS: usize = 256;

/// Connections the kernel completes and holds for the accept loop. std's 128 overflowed in the
/// test when a client opened 200 connections at once while the loop was busy with a flooding
/// client: the kernel then drops connection requests, and a scrape among them waits a second for
/// its client to send its SYN again.
/// (Linux caps it at `net.core.somaxconn`, 4096 by default.)
const BACKLOG: i32 = 1024;

/// How often the accept loop looks at `done`.
const DONE_POLL: Duration = Duration::from_millis(50);

/// How long the accept loop waits after a failed accept (e.g. out of file descriptors) before
/// the next, rather than spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The endpoint's socket, bound before the pipeline starts.
pub(crate) struct Listener(std::net::TcpListener);

impl Listener {
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Binds the address before anything runs, so a taken port fails the run at start-up.
pub(crate) fn bind(addr: SocketAddr) -> crate::Result<Listener> {
    let listener = listen(addr).map_err(|e| {
        crate::Error::Config(format!(
            "cannot serve metrics on {addr} (--metrics-addr): {e}"
        ))
    })?;
    Ok(Listener(listener))
}

/// What `std::net::TcpListener::bind` does, with a backlog of [`BACKLOG`] rather than 128, and
/// non-blocking (as tokio takes it over).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std does on Unix: a restarted pipeline can bind while old connections linger in
    // TIME_WAIT. (On Windows the option would let another process take the port.)
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Answers scrapes with the text `metrics` renders until `done` (looked at every
/// [`DONE_POLL`]); then closes the listener and every open connection, and returns.
pub(crate) fn serve(listener: Listener, metrics: &(dyn Fn() -> String + Sync), done: &AtomicBool) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::warn!("metrics endpoint: cannot start its runtime: {error}");
            return;
        }
    };
    runtime.block_on(accept_until(listener, metrics, done));
}

async fn accept_until(
    listener: Listener,
    metrics: &(dyn Fn() -> String + Sync),
    done: &AtomicBool,
) {
    let listener = match tokio::net::TcpListener::from_std(listener.0) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!("metrics endpoint: {error}");
            return;
        }
    };
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        // One request per connection, as a scrape is; the response says `Connection: close`.
        .keep_alive(false)
        .title_case_headers(true);
    let http = &http;
    let mut connections = FuturesUnordered::new();
    let mut tick = tokio::time::interval(DONE_POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut accept_from = Instant::now();
    while !done.load(Relaxed) {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = connections.next(), if !connections.is_empty() => {}
            accepted = listener.accept(),
                if connections.len() < MAX_CONNECTIONS && Instant::now() >= accept_from =>
            {
                match accepted {
                    Ok((stream, _)) => connections.push(answer(http, stream, metrics)),
                    Err(error) => {
                        tracing::warn!("metrics endpoint: {error}");
                        accept_from = Instant::now() + ACCEPT_BACKOFF;
                    }
                }
            }
        }
    }
}

/// Serves one connection, for at most [`CONNECTION_TIMEOUT`].
async fn answer(
    http: &http1::Builder,
    stream: tokio::net::TcpStream,
    metrics: &(dyn Fn() -> String + Sync),
) {
    let service = hyper::service::service_fn(|request| {
        std::future::ready(Ok::<_, Infallible>(respond(&request, metrics)))
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!("metrics request failed: {error}"),
        Err(_) => tracing::debug!("metrics connection closed after {CONNECTION_TIMEOUT:?}"),
    }
}

/// `GET /metrics` and `GET /` answer the metrics; HEAD the same without the body (hyper leaves
/// it out, keeping its `Content-Length`).
fn respond(request: &Request<Incoming>, metrics: &dyn Fn() -> String) -> Response<Full<Bytes>> {
    let method = request.method();
    let (status, body) = if method != Method::GET && method != Method::HEAD {
        (StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_owned())
    } else if matches!(request.uri().path(), "/metrics" | "/") {
        (StatusCode::OK, metrics())
    } else {
        (
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n".to_owned(),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}
