//! Graph -> segments. A segment starts at a source or at a boundary's channel and runs every
//! stage it can reach up to the next boundary as one fused loop body. Boundaries are `merge`
//! (several producers into one stream) and sinks (writing overlaps with computing); partition and
//! fan-out only route elements, so they stay fused with no buffering or copy beyond the `Clone`
//! fan-out needs. A sink directly after a `merge` shares the merge's channel, saving a hop.

use crate::graph::Graph;
use crate::ops::Role;

pub struct Plan {
    /// Whether the stage is fed through a channel (and so heads a segment of its own).
    pub channel: Vec<bool>,
}

pub fn plan(graph: &Graph) -> Plan {
    let channel = graph
        .stages
        .iter()
        .map(|stage| match stage.op.role {
            Role::Merge => true,
            Role::Sink if stage.op.kind == "Sink" => {
                let from = stage.inputs[0].from;
                let after_merge =
                    graph.stages[from.0].op.role == Role::Merge && graph.consumers(from).len() == 1;
                !after_merge
            }
            _ => false,
        })
        .collect();
    Plan { channel }
}
