//! Syntax tree -> graph of stages, or diagnostics. A [`Builder`] walks the statements and adds
//! their stages, defines the stream names bound to them, then resolves the names used as inputs
//! (order is free), connects each stage to its consumers and orders the stages so that every stage
//! comes after its inputs. Each mistake it can find (arities, where each operator may stand,
//! unknown or twice-defined names, streams nobody consumes, cycles) is one function in [`rules`];
//! every mistake is reported, each at its span.

mod rules;

use std::collections::HashMap;

use proc_macro2::Span;
use syn::Ident;

use crate::diag::Ctxt;
use crate::ops::{OpSpec, Role};
use crate::parse::{Call, Head, Lhs, Pipeline, Stmt};

/// An output of a stage: `(stage, port)`; only a partition has more than port 0.
pub type PortRef = (usize, usize);

pub struct Input {
    pub from: PortRef,
    /// The stream name where the input was named (not for the previous stage of a chain), for
    /// spans of per-edge checks.
    pub via: Option<Ident>,
}

pub struct Stage<'a> {
    pub op: &'static OpSpec,
    pub call: &'a Call,
    pub inputs: Vec<Input>,
    /// Per output port: the stages consuming it, in the order they appear.
    pub consumers: Vec<Vec<usize>>,
    /// Per output port: the stream name bound to it, if any.
    pub bound: Vec<Option<Ident>>,
    /// For sources the stream they feed, for sinks `sinkN`: names for `--input`/`--output`.
    pub name: String,
    pub label: String,
}

impl Stage<'_> {
    pub fn span(&self) -> Span {
        self.call.name.span()
    }
}

pub struct Graph<'a> {
    pub stages: Vec<Stage<'a>>,
    /// Stage ids, each after all of its inputs.
    pub order: Vec<usize>,
}

impl<'a> Graph<'a> {
    /// The stages consuming `port`.
    pub fn consumers(&self, (stage, port): PortRef) -> &[usize] {
        &self.stages[stage].consumers[port]
    }
}

pub fn build<'a>(ast: &'a Pipeline, cx: &mut Ctxt) -> Option<Graph<'a>> {
    let mut builder = Builder::new(cx);
    for stmt in &ast.stmts {
        builder.statement(stmt);
    }
    builder.resolve();
    builder.connect();
    builder.finish(ast)
}

/// An input of a stage before the names are resolved.
enum Pending {
    Resolved(PortRef),
    Named(Ident),
}

/// Where a statement's chain stands while its stages are added.
#[derive(Default)]
struct Chain<'a> {
    /// The stream flowing out of the chain so far: none before the head, then a port.
    current: Option<Pending>,
    /// The last stage added.
    last: Option<usize>,
    /// The sink that ended the chain, if one did.
    ended_by: Option<&'a Call>,
}

struct Builder<'a, 'cx> {
    cx: &'cx mut Ctxt,
    stages: Vec<Stage<'a>>,
    /// Per stage, its inputs until the names are resolved.
    pending: Vec<Vec<Pending>>,
    /// Each stream name, where it is defined first and the port it names.
    names: HashMap<String, (Ident, PortRef)>,
    /// The outputs so far, to number them.
    outputs: usize,
    /// Names whose mistakes were reported already (defined twice, suggested for an unknown
    /// stream): no "never consumed" on top.
    reported: Vec<String>,
}

impl<'a, 'cx> Builder<'a, 'cx> {
    fn new(cx: &'cx mut Ctxt) -> Self {
        Self {
            cx,
            stages: Vec::new(),
            pending: Vec::new(),
            names: HashMap::new(),
            outputs: 0,
            reported: Vec::new(),
        }
    }

    /// One statement: its head, the stages of its chain, then what the chain is bound to.
    fn statement(&mut self, stmt: &'a Stmt) {
        let mut chain = self.head(stmt);
        for call in &stmt.calls {
            self.link(stmt, call, &mut chain);
        }
        if stmt.calls.is_empty() {
            if let Head::Stream(name) = &stmt.head {
                rules::stream_alone(name, self.cx);
                return;
            }
        }
        if let Some(last) = chain.last {
            self.bind(stmt, last);
        }
    }

    /// The head of a chain: a stream name, or the stage of a source or a merge.
    fn head(&mut self, stmt: &'a Stmt) -> Chain<'a> {
        let mut chain = Chain::default();
        let call = match &stmt.head {
            Head::Stream(name) => {
                chain.current = Some(Pending::Named(name.clone()));
                return chain;
            }
            Head::Call(call) => call,
        };
        let Some(op) = rules::known_stage(call, self.cx) else {
            return chain;
        };
        let inputs = match op.role {
            Role::Source => {
                rules::argument_count(op, call, self.cx);
                Vec::new()
            }
            Role::Merge => {
                let streams = rules::merge_of_names(op, call, self.cx);
                rules::merge_of_two_or_more(op, call, self.cx);
                streams.into_iter().map(Pending::Named).collect()
            }
            _ => {
                rules::needs_an_input(op, call, self.cx);
                return chain;
            }
        };
        let id = self.add_stage(op, call, 1, inputs);
        if op.role == Role::Source {
            self.stages[id].name = match &stmt.lhs {
                Lhs::One(name) => name.to_string(),
                _ => format!("source{id}"),
            };
        }
        chain.current = Some(Pending::Resolved((id, 0)));
        chain.last = Some(id);
        chain
    }

    /// A stage after `->`, fed by the chain so far.
    fn link(&mut self, stmt: &Stmt, call: &'a Call, chain: &mut Chain<'a>) {
        let Some(op) = rules::known_stage(call, self.cx) else {
            chain.current = None;
            return;
        };
        rules::argument_count(op, call, self.cx);
        if !rules::nothing_after_a_sink(chain.ended_by, op, call, self.cx) {
            return;
        }
        if !rules::starts_no_chain_after_arrow(op, call, self.cx) {
            chain.current = None;
            return;
        }
        let ports = match (op.role, &stmt.lhs) {
            (Role::Partition, Lhs::Many { names, .. }) => names.len().max(1),
            _ => 1,
        };
        let id = self.add_stage(op, call, ports, chain.current.take().into_iter().collect());
        chain.last = Some(id);
        if op.role.ends_chain() {
            chain.ended_by = Some(call);
            if op.output {
                self.outputs += 1;
                self.stages[id].name = format!("sink{}", self.outputs);
            }
        } else {
            chain.current = Some(Pending::Resolved((id, 0)));
        }
    }

    fn add_stage(
        &mut self,
        op: &'static OpSpec,
        call: &'a Call,
        ports: usize,
        inputs: Vec<Pending>,
    ) -> usize {
        self.stages.push(Stage {
            op,
            call,
            inputs: Vec::new(),
            consumers: vec![Vec::new(); ports],
            bound: vec![None; ports],
            name: String::new(),
            label: call.label(),
        });
        self.pending.push(inputs);
        self.stages.len() - 1
    }

    /// What the chain ending at stage `last` is bound to: nothing, a name, or a partition's arms.
    fn bind(&mut self, stmt: &Stmt, last: usize) {
        let op = self.stages[last].op;
        match &stmt.lhs {
            Lhs::None => rules::result_used(op, chain_span(stmt), self.cx),
            Lhs::One(name) => {
                if !rules::makes_a_stream(op, name, self.cx) {
                    return;
                }
                let one = rules::makes_one_stream(op, name, self.cx);
                // Defined even when it names a partition, so its uses do not add "unknown
                // stream" errors.
                self.define(name, (last, 0));
                if one {
                    self.stages[last].bound[0] = Some(name.clone());
                }
            }
            Lhs::Many { span, names } => {
                if !rules::arms_of_a_partition(op, *span, self.cx) {
                    return;
                }
                rules::at_least_one_arm(names, *span, self.cx);
                rules::one_ratio_per_arm(op, self.stages[last].call, names, *span, self.cx);
                for (port, name) in names.iter().enumerate() {
                    self.define(name, (last, port));
                    self.stages[last].bound[port] = Some(name.clone());
                }
            }
        }
    }

    fn define(&mut self, name: &Ident, port: PortRef) {
        let key = name.to_string();
        let first = self.names.get(&key).map(|(first, _)| first);
        if rules::defined_once(first, name, self.cx) {
            self.names.insert(key, (name.clone(), port));
        } else {
            self.reported.push(key);
        }
    }

    /// The stream names used as inputs, now that every statement has defined its names.
    fn resolve(&mut self) {
        let mut known: Vec<&str> = self.names.keys().map(String::as_str).collect();
        known.sort_unstable();
        for (id, pending) in std::mem::take(&mut self.pending).into_iter().enumerate() {
            for input in pending {
                let input = match input {
                    Pending::Resolved(from) => Input { from, via: None },
                    Pending::Named(name) => match self.names.get(&name.to_string()) {
                        Some(&(_, from)) => Input {
                            from,
                            via: Some(name),
                        },
                        None => {
                            if let Some(meant) = rules::unknown_stream(&name, &known, self.cx) {
                                self.reported.push(meant.to_owned());
                            }
                            continue;
                        }
                    },
                };
                self.stages[id].inputs.push(input);
            }
        }
    }

    /// Each input, recorded as a consumer of the port it reads.
    fn connect(&mut self) {
        for id in 0..self.stages.len() {
            for i in 0..self.stages[id].inputs.len() {
                let (from, port) = self.stages[id].inputs[i].from;
                self.stages[from].consumers[port].push(id);
            }
        }
    }

    /// The checks of the whole graph, then the order of its stages.
    fn finish(self, ast: &Pipeline) -> Option<Graph<'a>> {
        rules::every_stream_consumed(&self.stages, &self.reported, self.cx);
        rules::reads_something(ast, &self.stages, self.cx);
        let order = match topological(&self.stages) {
            Ok(order) => order,
            Err(waiting) => {
                rules::no_cycle(&self.stages, &waiting, self.cx);
                return None;
            }
        };
        Some(Graph {
            stages: self.stages,
            order,
        })
    }
}

/// Where a mistake about a whole chain is reported: its last stage, or its head.
fn chain_span(stmt: &Stmt) -> Span {
    match (stmt.calls.last(), &stmt.head) {
        (Some(call), _) | (None, Head::Call(call)) => call.name.span(),
        (None, Head::Stream(name)) => name.span(),
    }
}

/// Kahn's algorithm; on a cycle, the number of inputs each stage still waits for (a leftover
/// stage is on a cycle of stream names or downstream of one).
fn topological(stages: &[Stage]) -> Result<Vec<usize>, Vec<usize>> {
    let mut waiting: Vec<usize> = stages.iter().map(|s| s.inputs.len()).collect();
    let mut ready: Vec<usize> = (0..stages.len())
        .filter(|&i| waiting[i] == 0)
        .rev()
        .collect();
    let mut order = Vec::with_capacity(stages.len());
    while let Some(id) = ready.pop() {
        order.push(id);
        let mut next: Vec<usize> = stages[id].consumers.iter().flatten().copied().collect();
        next.sort_unstable();
        next.dedup();
        for c in next.into_iter().rev() {
            let edges = stages[c].inputs.iter().filter(|i| i.from.0 == id).count();
            waiting[c] -= edges;
            if waiting[c] == 0 {
                ready.push(c);
            }
        }
    }
    if order.len() == stages.len() {
        Ok(order)
    } else {
        Err(waiting)
    }
}
