//! The processes' network: timely's configuration for a [`Cluster`], and the connections
//! between processes, made here rather than by timely.

use std::any::Any;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::Hooks;
use timely::{CommunicationConfig, WorkerConfig};

use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// timely's configuration for `cluster`, built directly (no argument parsing): one thread, one
/// process of `workers` threads, or a cluster of `processes` connected over TCP.
pub fn timely_config(cluster: &Cluster) -> Result<timely::Config> {
    cluster.check()?;
    // Read (and so check) a hostfile even for one process: a bad one is a mistake either way.
    let addresses = cluster.addresses()?;
    let communication = match (cluster.processes, cluster.workers) {
        (1, 1) => CommunicationConfig::Thread,
        (1, workers) => CommunicationConfig::Process(workers),
        (_, workers) => CommunicationConfig::Cluster {
            threads: workers,
            process: cluster.process,
            addresses,
            report: false,
            zerocopy: false,
        },
    };
    Ok(timely::Config {
        communication,
        worker: WorkerConfig::default(),
    })
}

/// How long a process waits for the others to start and connect.
const CONNECT_FOR: Duration = Duration::from_secs(60);

/// timely's communication for this process. For several processes the connections are made
/// here rather than by timely, which retries for ever and prints each try on stdout (where a
/// pipeline may be writing its output): each process connects to those before it in the
/// hostfile and accepts those after it, for at most [`CONNECT_FOR`], then hands the sockets to
/// timely.
pub(super) fn connect(
    config: &CommunicationConfig,
) -> Result<(Vec<AllocatorBuilder>, Box<dyn Any + Send>)> {
    let CommunicationConfig::Cluster {
        threads,
        process,
        addresses,
        ..
    } = config
    else {
        return config
            .clone()
            .try_build()
            .map_err(|e| Error::Config(format!("cannot start the timely workers: {e}")));
    };
    let (threads, process) = (*threads, *process);
    let fail = |what: String, e: std::io::Error| {
        Error::Config(format!(
            "process {process} cannot connect to the other processes of the run: {what}: {e}"
        ))
    };
    let deadline = Instant::now() + CONNECT_FOR;
    let mut sockets: Vec<Option<TcpStream>> = Vec::with_capacity(addresses.len());
    // The processes before this one listen: connect to each, saying who this is.
    for (index, address) in addresses.iter().enumerate().take(process) {
        let mut stream = loop {
            match TcpStream::connect(address) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(fail(
                        format!(
                            "process {index} at {address} did not answer within {}s",
                            CONNECT_FOR.as_secs()
                        ),
                        e,
                    ))
                }
                Err(e) => {
                    tracing::debug!("process {index} at {address} not there yet: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        let said = stream
            .set_nodelay(true)
            .and_then(|()| stream.write_all(&(process as u64).to_be_bytes()));
        said.map_err(|e| fail(format!("greeting process {index} at {address}"), e))?;
        sockets.push(Some(stream));
    }
    sockets.push(None);
    // The processes after this one connect here.
    let mut later: Vec<Option<TcpStream>> = (process + 1..addresses.len()).map(|_| None).collect();
    if !later.is_empty() {
        let address = &addresses[process];
        let listener =
            TcpListener::bind(address).map_err(|e| fail(format!("listening on {address}"), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| fail(format!("listening on {address}"), e))?;
        while later.iter().any(Option::is_none) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let mut index = [0; 8];
                    let heard = stream
                        .set_nonblocking(false)
                        .and_then(|()| stream.set_nodelay(true))
                        .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(10))))
                        .and_then(|()| stream.read_exact(&mut index))
                        .and_then(|()| stream.set_read_timeout(None));
                    let index = u64::from_be_bytes(index) as usize;
                    match heard {
                        Ok(()) if index > process && index < addresses.len() => {
                            later[index - process - 1] = Some(stream)
                        }
                        // Not one of ours (a port scan, a stray client): ignore it.
                        _ => tracing::warn!(
                            "ignored a connection on {address} that is not a process of this run"
                        ),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let missing: Vec<String> = later
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.is_none())
                            .map(|(i, _)| (process + 1 + i).to_string())
                            .collect();
                        return Err(Error::Config(format!(
                            "process {process}: process{} {} did not connect within {}s (are they \
                             started, with the same --processes and --hostfile?)",
                            if missing.len() == 1 { "" } else { "es" },
                            missing.join(", "),
                            CONNECT_FOR.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(fail(format!("accepting on {address}"), e)),
            }
        }
    }
    sockets.extend(later);
    let hooks = Hooks::default();
    let process_allocators =
        ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) =
        initialize_networking_from_sockets(process_allocators, sockets, process, threads, hooks)
            .map_err(|e| fail("starting timely's network threads".into(), e))?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        Box::new(guard),
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn hostfile(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    pub(crate) fn cluster(
        processes: usize,
        process: usize,
        file: &tempfile::NamedTempFile,
    ) -> Cluster {
        Cluster {
            workers: 2,
            processes,
            process,
            hostfile: Some(file.path().to_owned()),
        }
    }

    fn error(cluster: &Cluster) -> String {
        timely_config(cluster).unwrap_err().to_string()
    }

    #[test]
    fn default_is_one_thread() {
        let config = timely_config(&Cluster::default()).unwrap();
        assert!(matches!(config.communication, CommunicationConfig::Thread));
        assert!(Cluster::default().is_single());
    }

    #[test]
    fn workers_in_one_process() {
        let config = timely_config(&Cluster::threads(3)).unwrap();
        assert!(matches!(
            config.communication,
            CommunicationConfig::Process(3)
        ));
        assert!(!Cluster::threads(3).is_single());
    }

    #[test]
    fn hostfile_gives_the_cluster_addresses() {
        let file = hostfile("# the two\n\nhost-a:2101\n  10.0.0.2:2102  \n");
        let config = timely_config(&cluster(2, 1, &file)).unwrap();
        match config.communication {
            CommunicationConfig::Cluster {
                threads,
                process,
                addresses,
                ..
            } => {
                assert_eq!((threads, process), (2, 1));
                assert_eq!(addresses, ["host-a:2101", "10.0.0.2:2102"]);
            }
            other => panic!("not a cluster: {other:?}"),
        }
    }

    #[test]
    fn without_hostfile_processes_listen_on_localhost() {
        let config = timely_config(&Cluster {
            workers: 1,
            processes: 3,
            process: 2,
            hostfile: None,
        })
        .unwrap();
        match config.communication {
            CommunicationConfig::Cluster { addresses, .. } => {
                assert_eq!(
                    addresses,
                    ["localhost:2101", "localhost:2102", "localhost:2103"]
                )
            }
            other => panic!("not a cluster: {other:?}"),
        }
    }

    #[test]
    fn missing_hostfile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.txt");
        let err = error(&Cluster {
            workers: 1,
            processes: 2,
            process: 0,
            hostfile: Some(path.clone()),
        });
        assert!(err.starts_with("cannot open hostfile"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn hostfile_with_too_few_or_too_many_lines() {
        let file = hostfile("a:1\nb:2\n");
        let err = error(&cluster(3, 0, &file));
        assert!(
            err.contains("lists 2 addresses but --processes is 3"),
            "{err}"
        );
        let file = hostfile("a:1\nb:2\nc:3\n");
        let err = error(&cluster(2, 0, &file));
        assert!(
            err.contains("lists 3 addresses but --processes is 2"),
            "{err}"
        );
        let file = hostfile("a:1\n");
        let err = error(&cluster(2, 0, &file));
        assert!(err.contains("lists 1 address but"), "{err}");
    }

    #[test]
    fn process_index_out_of_range() {
        let file = hostfile("a:1\nb:2\n");
        let err = error(&cluster(2, 2, &file));
        assert_eq!(
            err,
            "--process 2 is out of range: with --processes 2 it is from 0 to 1"
        );
    }

    #[test]
    fn zero_workers_or_processes() {
        assert_eq!(error(&Cluster::threads(0)), "--workers must be at least 1");
        let none = Cluster {
            processes: 0,
            ..Cluster::default()
        };
        assert_eq!(error(&none), "--processes must be at least 1");
    }

    #[test]
    fn unparsable_addresses() {
        for (line, why) in [
            ("hostname", "no `:` before a port"),
            (":2101", "no host name"),
            ("host:", "the port `` is not a number"),
            ("host:http", "the port `http` is not a number"),
            (
                "host:70000",
                "the port `70000` is not a number from 1 to 65535",
            ),
            ("host:0", "the port `0` is not"),
            ("two hosts:1", "no host name"),
        ] {
            let file = hostfile(&format!("ok:1\n\n{line}\n"));
            let err = error(&cluster(2, 0, &file));
            assert!(
                err.contains(&format!("line 3: `{line}` is not `host:port`")),
                "{line}: {err}"
            );
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn the_same_address_twice() {
        let file = hostfile("a:1\na:1\n");
        let err = error(&cluster(2, 0, &file));
        assert!(
            err.contains("line 2: `a:1` is already the address of line 1"),
            "{err}"
        );
    }
}
