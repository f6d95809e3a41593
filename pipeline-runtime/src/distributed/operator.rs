//! A worker's segments as timely operators ([`Segments`]: one operator per fused segment,
//! stepping its task), and [`run_in_operator`], the same shape for a hand-written task (measured
//! in `benches/timely_worker.rs`).

use std::cell::RefCell;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Probe;

use super::network::timely_config;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::segment::{Step, Task};

type Slot = Rc<RefCell<Option<Box<dyn Task>>>>;

/// A worker's segments, each run by a timely operator of its own on the worker's thread: the
/// operator steps its task whenever timely schedules it, and is scheduled again at once while
/// the task is busy, when its channel's senders wake it, or after the pause the task asked for.
/// Once the task is done, the operator drops it and lets go of its capability.
///
/// A worker's segments are done when its own tasks are ([`Segments::done`]), not when timely's
/// progress says so: that waits for every worker's, and a worker that failed must tell the
/// others at once (its report), not after they end.
pub(super) struct Segments<'a> {
    /// The tasks, taken out (dropped) as each is done, and at the latest when this is dropped.
    slots: Vec<Slot>,
    results: Rc<RefCell<Vec<Option<Result<()>>>>>,
    _tasks: std::marker::PhantomData<Box<dyn Task + 'a>>,
}

impl<'a> Segments<'a> {
    pub(super) fn new(tasks: Vec<Box<dyn Task + 'a>>) -> Self {
        let results = Rc::new(RefCell::new((0..tasks.len()).map(|_| None).collect()));
        let slots = tasks
            .into_iter()
            .map(|task| {
                // SAFETY: timely's operators must be `'static`, and a task borrows the pipeline's
                // arguments and its run (`'a`). The operators only reach a task through its slot,
                // and every task leaves its slot (is dropped) when it is done or when `self` is
                // dropped, whichever comes first: `self` cannot outlive `'a`, so no task is used
                // or dropped after `'a`, even though the worker (and its operators, holding the
                // emptied slots) may outlive it.
                let task: Box<dyn Task + 'static> = unsafe {
                    std::mem::transmute::<Box<dyn Task + 'a>, Box<dyn Task + 'static>>(task)
                };
                Rc::new(RefCell::new(Some(task)))
            })
            .collect();
        Self {
            slots,
            results,
            _tasks: std::marker::PhantomData,
        }
    }

    /// Builds a dataflow of one operator per task on `worker`.
    pub(super) fn operators(&self, worker: &mut timely::worker::Worker) {
        worker.dataflow::<u64, _, _>(|scope| {
            for (index, slot) in self.slots.iter().enumerate() {
                let (slot, results) = (Rc::clone(slot), Rc::clone(&self.results));
                source::<_, CapacityContainerBuilder<Vec<()>>, _, _>(
                    scope,
                    "segment",
                    move |capability, info| {
                        let activator = scope.activator_for(Rc::clone(&info.address));
                        let waker = scope.worker().sync_activator_for(info.address.to_vec());
                        if let Some(task) = slot.borrow_mut().as_mut() {
                            task.wake_with(Box::new(move || {
                                // Fails only once the worker has gone (the run is over).
                                let _ = waker.activate();
                            }));
                        }
                        let mut capability = Some(capability);
                        move |_output| {
                            // timely may schedule the operator after it let go of its capability
                            // (progress from other workers): a done task is not stepped again.
                            if capability.is_none() {
                                return;
                            }
                            let step = match slot.borrow_mut().as_mut() {
                                Some(task) => task.step(),
                                None => Step::Done(Ok(())),
                            };
                            match step {
                                Step::Busy => activator.activate(),
                                Step::Wait(Some(pause)) => activator.activate_after(pause),
                                Step::Wait(None) => {}
                                Step::Done(result) => {
                                    // Dropped now: its channels' senders close, which wakes the
                                    // tasks reading them.
                                    drop(slot.borrow_mut().take());
                                    results.borrow_mut()[index] = Some(result);
                                    capability = None;
                                }
                            }
                        }
                    },
                );
            }
        });
    }

    /// Whether every task of this worker is done.
    pub(super) fn done(&self) -> bool {
        self.results.borrow().iter().all(Option::is_some)
    }

    /// The errors of the tasks that failed since the last call.
    pub(super) fn failures(&mut self) -> Vec<Error> {
        let mut results = self.results.borrow_mut();
        let mut failures = Vec::new();
        for result in results.iter_mut() {
            if matches!(result, Some(Err(_))) {
                if let Some(Err(error)) = result.replace(Ok(())) {
                    failures.push(error);
                }
            }
        }
        failures
    }
}

impl Drop for Segments<'_> {
    fn drop(&mut self) {
        for slot in &self.slots {
            match slot.try_borrow_mut() {
                Ok(mut task) => drop(task.take()),
                // A task in use cannot be here (it is used only inside a step of its operator,
                // which has returned or unwound); were it so, it must not outlive its borrows.
                Err(_) => std::process::abort(),
            }
        }
    }
}

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
