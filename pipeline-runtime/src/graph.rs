//! A pipeline's static graph, rendered as Mermaid or Graphviz DOT (`--graph mermaid|dot`).

use std::fmt::Write;

/// What a stage does; decides how its counts enter the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageKind {
    Source,
    Map,
    Filter,
    FlatMap,
    TryMap,
    Inspect,
    KeyBy,
    Partition,
    Inference,
    Window,
    Combine,
    Merge,
    Sink,
    Drop,
}

impl StageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "read",
            Self::Map => "map",
            Self::Filter => "filter",
            Self::FlatMap => "flat_map",
            Self::TryMap => "try_map",
            Self::Inspect => "inspect",
            Self::KeyBy => "key_by",
            Self::Partition => "partition",
            Self::Inference => "run_inference",
            Self::Window => "window",
            Self::Combine => "combine_per_key",
            Self::Merge => "merge",
            Self::Sink => "write",
            Self::Drop => "drop",
        }
    }
}

/// One stage of a pipeline, as the macro saw it.
#[derive(Clone, Copy, Debug)]
pub struct StageInfo {
    pub kind: StageKind,
    /// For sources, the stream they are bound to; for sinks `sink1`, `sink2`, ... in order of
    /// appearance. `--input NAME=PATH` and `--output NAME=PATH` use these names.
    pub name: &'static str,
    /// The stage as written, shortened (`map(|p| Served::new("champion", p))`).
    pub label: &'static str,
    /// Line of the stage in the source file.
    pub line: u32,
}

/// A stream flowing from one stage into another.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub from: u32,
    /// The output of `from` (a partition's arm; 0 for every other stage).
    pub port: u32,
    pub to: u32,
    /// The stream's name where the pipeline binds one, else empty.
    pub stream: &'static str,
}

/// A pipeline's stages and streams.
#[derive(Debug)]
pub struct Graph {
    pub name: &'static str,
    /// The pipeline's doc comment.
    pub doc: &'static str,
    pub stages: &'static [StageInfo],
    pub edges: &'static [Edge],
}

impl Graph {
    /// A Mermaid flowchart (paste into a Markdown file on most forges to see it drawn).
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (id, stage) in self.stages.iter().enumerate() {
            let label = stage.label.replace('"', "#quot;");
            let (open, close) = match stage.kind {
                StageKind::Source => ("[/\"", "\"/]"),
                StageKind::Sink | StageKind::Drop => ("[\\\"", "\"\\]"),
                StageKind::Partition => ("{{\"", "\"}}"),
                StageKind::Inference => ("[[\"", "\"]]"),
                StageKind::Merge => ("((\"", "\"))"),
                _ => ("[\"", "\"]"),
            };
            let _ = writeln!(out, "    s{id}{open}{id}: {label}{close}");
        }
        for edge in self.edges {
            if edge.stream.is_empty() {
                let _ = writeln!(out, "    s{} --> s{}", edge.from, edge.to);
            } else {
                let _ = writeln!(out, "    s{} -->|{}| s{}", edge.from, edge.stream, edge.to);
            }
        }
        out
    }

    /// The sources whose elements can reach stage `id`, in id order.
    pub fn sources_upstream(&self, id: u32) -> Vec<u32> {
        let mut seen = vec![false; self.stages.len()];
        let mut todo = vec![id];
        while let Some(at) = todo.pop() {
            for edge in self.edges.iter().filter(|e| e.to == at) {
                if !std::mem::replace(&mut seen[edge.from as usize], true) {
                    todo.push(edge.from);
                }
            }
        }
        (0..self.stages.len() as u32)
            .filter(|&s| seen[s as usize] && self.stages[s as usize].kind == StageKind::Source)
            .collect()
    }

    /// How many distinct paths lead from stage `from` to stage `to` (through fan-outs, a
    /// partition's arms, merges), saturating.
    pub fn paths(&self, from: u32, to: u32) -> u64 {
        fn count(g: &Graph, at: u32, to: u32, memo: &mut [Option<u64>]) -> u64 {
            if at == to {
                return 1;
            }
            if let Some(n) = memo[at as usize] {
                return n;
            }
            let n = g
                .edges
                .iter()
                .filter(|e| e.from == at)
                .fold(0u64, |n, e| n.saturating_add(count(g, e.to, to, memo)));
            memo[at as usize] = Some(n);
            n
        }
        count(self, from, to, &mut vec![None; self.stages.len()])
    }

    /// A Graphviz digraph (`dot -Tsvg`).
    pub fn dot(&self) -> String {
        let mut out = format!(
            "digraph {} {{\n    rankdir=LR;\n    node [fontname=\"monospace\"];\n",
            self.name
        );
        for (id, stage) in self.stages.iter().enumerate() {
            let shape = match stage.kind {
                StageKind::Source | StageKind::Sink | StageKind::Drop => "parallelogram",
                StageKind::Partition => "hexagon",
                StageKind::Inference => "box3d",
                StageKind::Merge => "circle",
                _ => "box",
            };
            let label = format!("{id}: {}", stage.label)
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            let _ = writeln!(out, "    s{id} [shape={shape}, label=\"{label}\"];");
        }
        for edge in self.edges {
            let _ = writeln!(
                out,
                "    s{} -> s{} [label=\"{}\"];",
                edge.from, edge.to, edge.stream
            );
        }
        out.push_str("}\n");
        out
    }
}
