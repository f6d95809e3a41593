//! One timely operator around a worker's task: the shape the lowering of a fused segment will
//! take, measured in `benches/timely_worker.rs`.

use std::cell::RefCell;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Probe;

use super::network::timely_config;
use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// Which worker a task runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerId {
    /// This worker's index among all workers of all processes.
    pub index: usize,
    /// How many workers there are in all.
    pub peers: usize,
}

/// The work of one worker inside its operator: a fused chain fed from this worker's share of the
/// input, ending in a sink of its own.
pub trait WorkerTask: 'static {
    /// What the worker hands back when its task is done (its sink's result).
    type Output: Send + 'static;

    /// Does the next chunk of work; `false` once there is nothing left (then it is not called
    /// again).
    fn step(&mut self) -> bool;

    /// Called once `step` has returned `false`.
    fn finish(self) -> Self::Output;
}

/// Runs, on every worker of this process, a dataflow of one timely operator that calls the
/// worker's task (made by `make`) chunk by chunk, reactivating itself until the task is done, and
/// steps the worker until a probe behind the operator sees it finished. Returns the outputs of
/// this process's workers, in worker order.
pub fn run_in_operator<W, F>(cluster: &Cluster, make: F) -> Result<Vec<W::Output>>
where
    W: WorkerTask,
    F: Fn(WorkerId) -> W + Send + Sync + 'static,
{
    let config = timely_config(cluster)?;
    let guards = timely::execute(config, move |worker| {
        let id = WorkerId {
            index: worker.index(),
            peers: worker.peers(),
        };
        let task = Rc::new(RefCell::new(Some(make(id))));
        let in_operator = Rc::clone(&task);
        let probe = worker.dataflow::<u64, _, _>(move |scope| {
            let stream = source::<_, CapacityContainerBuilder<Vec<()>>, _, _>(
                scope,
                "segment",
                move |capability, info| {
                    let activator = scope.activator_for(info.address);
                    let mut capability = Some(capability);
                    move |_output| {
                        // timely may schedule the operator again after it let go of its
                        // capability (when progress arrives from other workers): a finished task
                        // is not stepped again.
                        if capability.is_none() {
                            return;
                        }
                        let more = match in_operator.borrow_mut().as_mut() {
                            Some(task) => task.step(),
                            None => false,
                        };
                        if more {
                            activator.activate();
                        } else {
                            // Released: the probe sees the operator finished.
                            drop(capability.take());
                        }
                    }
                },
            );
            stream.probe().0
        });
        worker.step_while(|| !probe.done());
        let task = task.borrow_mut().take();
        task.expect("the task is taken once, after its operator is done")
            .finish()
    })
    .map_err(|e| Error::Config(format!("cannot start the timely workers: {e}")))?;
    guards
        .join()
        .into_iter()
        .map(|r| r.map_err(|e| Error::Internal(format!("a timely worker failed: {e}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::network::tests::{cluster, hostfile};

    /// Counts the numbers below `end` that are its worker's (by index modulo workers).
    struct Count {
        next: u64,
        end: u64,
        stride: u64,
        seen: Vec<u64>,
        done: bool,
    }

    impl WorkerTask for Count {
        type Output = Vec<u64>;

        fn step(&mut self) -> bool {
            assert!(!self.done, "stepped again after it returned false");
            // Ten at a time, so the operator is activated again and again.
            for _ in 0..10 {
                if self.next >= self.end {
                    self.done = true;
                    return false;
                }
                self.seen.push(self.next);
                self.next += self.stride;
            }
            true
        }

        fn finish(self) -> Vec<u64> {
            self.seen
        }
    }

    #[test]
    fn every_worker_runs_its_task_to_the_end() {
        for workers in [1, 3] {
            let outputs = run_in_operator(&Cluster::threads(workers), |id| Count {
                next: id.index as u64,
                end: 1000,
                stride: id.peers as u64,
                seen: Vec::new(),
                done: false,
            })
            .unwrap();
            assert_eq!(outputs.len(), workers);
            let mut all: Vec<u64> = outputs.into_iter().flatten().collect();
            all.sort_unstable();
            assert_eq!(all, (0..1000).collect::<Vec<_>>());
        }
    }

    /// Two processes of two workers each, as two threads of this test connected over TCP on
    /// localhost. (timely's connection set-up sleeps a second between tries.)
    #[test]
    fn two_processes_share_the_work() {
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.local_addr().unwrap().port()
            })
            .collect();
        let file = hostfile(&format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1]));
        let members: Vec<Vec<Vec<u64>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|process| {
                    let cluster = cluster(2, process, &file);
                    s.spawn(move || {
                        run_in_operator(&cluster, |id| Count {
                            next: id.index as u64,
                            end: 1000,
                            stride: id.peers as u64,
                            seen: Vec::new(),
                            done: false,
                        })
                        .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(members.iter().all(|m| m.len() == 2));
        let mut all: Vec<u64> = members.into_iter().flatten().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }
}
