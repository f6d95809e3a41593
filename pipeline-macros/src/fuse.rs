//! Graph -> segments. A segment starts at a source or at a boundary's channel and runs every
//! stage it can reach as one fused loop body on one thread: element-wise stages, partitions and
//! fan-out (they only route), sinks (measured: a channel hop in front of a cheap sink cost more
//! than the sink), and merges whose inputs all come from the segment itself (a junction). Two
//! boundaries are left: a merge of streams from different segments, which needs a channel, and
//! `run_inference`, whose pre-processing is fused into the segment in front of it while its
//! results come out of a channel at the head of a segment of its own (the model runs on threads
//! of its own in between).

use crate::graph::Graph;
use crate::ops::Role;

pub struct Plan {
    /// The segment of each stage, named by its head (a source or a channel merge).
    pub segment: Vec<usize>,
    /// Whether the stage is fed through a channel (and so heads a segment of its own).
    pub channel: Vec<bool>,
    /// Whether the stage is a merge fused into the segment of all its inputs.
    pub junction: Vec<bool>,
}

pub fn plan(graph: &Graph) -> Plan {
    let n = graph.stages.len();
    let mut plan = Plan {
        segment: (0..n).collect(),
        channel: vec![false; n],
        junction: vec![false; n],
    };
    for &id in &graph.order {
        let stage = &graph.stages[id];
        let mut from = stage.inputs.iter().map(|i| plan.segment[i.from.0]);
        match stage.op.role {
            Role::Source => plan.segment[id] = id,
            Role::Merge => {
                let first = from.next().expect("a merge has inputs");
                if from.all(|s| s == first) {
                    plan.segment[id] = first;
                    plan.junction[id] = true;
                } else {
                    plan.segment[id] = id;
                    plan.channel[id] = true;
                }
            }
            _ if stage.op.loads => {
                plan.segment[id] = id;
                plan.channel[id] = true;
            }
            _ => plan.segment[id] = from.next().expect("a stage has an input"),
        }
    }
    plan
}
