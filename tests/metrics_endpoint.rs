//! The metrics endpoint (`RunConfig::metrics_addr`) under a hostile client: while one connection
//! after another sends a request line without end and 200 more connect and send nothing, a normal
//! scrape is still answered at once, and the process (which is the server's) does not grow. Also
//! what each method and path gets, and that the endpoint is gone after the run.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem::prelude::*;

/// Holds a map stage's elements until it is opened, so the pipeline runs as long as a test needs
/// its endpoint (a stand-in for a slow model).
#[derive(Clone, Default)]
struct Gate(Arc<AtomicBool>);

impl Gate {
    fn open(&self) {
        self.0.store(true, SeqCst);
    }

    /// The map: each number passes once the gate is open (or after a minute, so that a test
    /// that went wrong cannot hold the run forever).
    fn pass(&self) -> impl FnMut(u64) -> u64 + Send + 'static {
        let open = self.0.clone();
        move |x| {
            let until = Instant::now() + Duration::from_secs(60);
            while !open.load(SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            x
        }
    }
}

/// Opens the gate when dropped: also when a test's assertion fails, so its run ends.
struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

struct Args {
    gate: Gate,
    out: Collector<u64>,
}

pipeline! {
    /// Numbers through a stage that holds them until the test is done with the endpoint.
    Held(args: Args) {
        read(Memory::new(0..100u64)) -> map(args.gate.pass()) -> write(args.out.clone());
    }
}

/// Starts `Held` with its metrics on a free port; returns the address, the gate (open it to let
/// the run end) and the run, which yields how many numbers came out.
fn start() -> (
    SocketAddr,
    OpenOnDrop,
    std::thread::JoinHandle<tandem::Result<usize>>,
) {
    let addr: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let gate = Gate::default();
    let args = Args {
        gate: gate.clone(),
        out: Collector::new(),
    };
    let config = RunConfig {
        metrics_addr: Some(addr),
        ..RunConfig::default()
    };
    let run = std::thread::spawn(move || {
        Held::run_blocking(&args, &config)?;
        Ok(args.out.take().len())
    });
    // The endpoint is up once a scrape gets an answer.
    let until = Instant::now() + Duration::from_secs(20);
    while request(addr, "GET", "/metrics").is_err() {
        assert!(
            Instant::now() < until,
            "the metrics endpoint never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (addr, OpenOnDrop(gate), run)
}

/// Sends `method path` as a client would and reads the response to the end (the server closes
/// the connection): (status line and headers, body). Gives up after a few seconds.
fn request(addr: SocketAddr, method: &str, path: &str) -> Result<(String, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("{e} after {} bytes", response.len()))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {response:?}"))?;
    Ok((head.to_owned(), body.to_owned()))
}

/// A memory figure of this process from `/proc/self/status`, in bytes (`VmRSS`, `VmHWM`).
fn memory(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

const MIB: u64 = 1024 * 1024;

/// What the flooding client did.
#[derive(Default)]
struct Flood {
    /// Bytes of request line written, over all its connections.
    sent: AtomicU64,
    connections: AtomicU64,
    /// Connections the server closed (reset) while the line was still coming.
    cut_off: AtomicU64,
    stop: AtomicBool,
}

/// The longest request line the flood sends over one connection: far more than any request line
/// needs, little enough to stay quick.
const LINE_BYTES: u64 = 256 * MIB;

/// Sends `GET /` followed by `a`s, never a newline, as fast as the server takes them, up to
/// [`LINE_BYTES`]; when the server closes the connection (or the line is at its end), connects
/// again; until `stop`, for at most 20 s and 10,000 connections.
fn flood(addr: SocketAddr, flood: &Flood) {
    let chunk = vec![b'a'; MIB as usize];
    let until = Instant::now() + Duration::from_secs(20);
    let going = || {
        !flood.stop.load(SeqCst)
            && flood.connections.load(SeqCst) < 10_000
            && Instant::now() < until
    };
    while going() {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        flood.connections.fetch_add(1, SeqCst);
        stream
            .set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut line: &[u8] = b"GET /";
        let mut sent = 0;
        while going() && sent < LINE_BYTES {
            match stream.write(line) {
                Ok(n) => {
                    sent += n as u64;
                    flood.sent.fetch_add(n as u64, SeqCst);
                    line = &chunk;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    flood.cut_off.fetch_add(1, SeqCst);
                    break;
                }
            }
        }
    }
}

#[test]
fn a_hostile_client_neither_grows_memory_nor_holds_up_a_scrape() {
    let (addr, gate, run) = start();
    let before = memory("VmRSS");

    // (a) A request line without end, over one connection after another.
    let flooding = Arc::new(Flood::default());
    let flooder = {
        let flooding = flooding.clone();
        std::thread::spawn(move || flood(addr, &flooding))
    };
    let until = Instant::now() + Duration::from_secs(10);
    while flooding.sent.load(SeqCst) < 16 * MIB && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }

    // (b) 200 connections that send nothing.
    let mut idle = Vec::new();
    let mut refused = Vec::new();
    while idle.len() < 200 && refused.len() < 3 {
        let started = Instant::now();
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(stream) => idle.push(stream),
            Err(e) => refused.push(format!(
                "connection {} after {:?}: {e}",
                idle.len() + 1,
                started.elapsed()
            )),
        }
    }

    // Meanwhile, scrapes.
    let mut slowest = Duration::ZERO;
    let mut scrapes = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        scrapes.push(request(addr, "GET", "/metrics"));
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let flood_was_going = !flooding.stop.load(SeqCst) && !flooder.is_finished();
    flooding.stop.store(true, SeqCst);
    flooder.join().unwrap();
    let grown = memory("VmHWM").saturating_sub(before);

    let seen = format!(
        "slowest scrape {slowest:?}; peak memory grew by {} MiB; the flood sent {} MiB over {} \
         connections, {} cut off by the server, and was still going during the scrapes: \
         {flood_was_going}; {} idle connections open, {} refused {refused:?}",
        grown / MIB,
        flooding.sent.load(SeqCst) / MIB,
        flooding.connections.load(SeqCst),
        flooding.cut_off.load(SeqCst),
        idle.len(),
        refused.len(),
    );
    eprintln!("{seen}");
    for scrape in &scrapes {
        let (head, body) = scrape
            .as_ref()
            .unwrap_or_else(|e| panic!("a scrape failed: {e}; {seen}"));
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}; {seen}");
        assert!(body.contains("tandem_stage_input_total{"), "{body}; {seen}");
    }
    assert!(slowest < Duration::from_secs(1), "{seen}");
    assert!(grown < 50 * MIB, "{seen}");
    assert!(flood_was_going, "{seen}");
    assert!(flooding.cut_off.load(SeqCst) >= 1, "{seen}");
    assert_eq!((idle.len(), refused.len()), (200, 0), "{seen}");

    // The server closes a connection that sends nothing within seconds: it holds no file
    // descriptor for long.
    let started = Instant::now();
    let mut silent = idle.pop().unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    assert!(
        !matches!(&read, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "an idle connection was still open after {:?}",
        started.elapsed()
    );

    drop(gate);
    assert_eq!(run.join().unwrap().unwrap(), 100);
}

#[test]
fn the_endpoint_answers_get_and_head_on_metrics_and_turns_away_the_rest() {
    let (addr, gate, run) = start();
    for path in ["/metrics", "/", "/metrics?x=1"] {
        let (head, body) = request(addr, "GET", path).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{path}: {head}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(
            body.contains("# TYPE tandem_stage_input_total counter"),
            "{path}: {body}"
        );
        assert!(
            body.contains("tandem_stage_input_total{") && body.contains("stage=\"read("),
            "{path}: {body}"
        );
    }
    // HEAD: the same head (its length included), no body.
    let (head, body) = request(addr, "HEAD", "/metrics").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no length: {head}"));
    assert!(length > 100, "{head}");
    assert_eq!(body, "");

    let (head, body) = request(addr, "GET", "/metricz").unwrap();
    assert!(head.starts_with("HTTP/1.1 404 Not Found"), "{head}");
    assert_eq!(body, "not found: metrics are at /metrics\n");

    for method in ["POST", "DELETE"] {
        let (head, _) = request(addr, method, "/metrics").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 405 Method Not Allowed"),
            "{method}: {head}"
        );
    }

    drop(gate);
    assert_eq!(run.join().unwrap().unwrap(), 100);
    // After the run the endpoint is gone.
    assert!(request(addr, "GET", "/metrics").is_err());
}
