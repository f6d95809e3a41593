//! Syntax tree -> graph of stages, or diagnostics. Resolves stream names, checks arities and
//! where each operator may stand, finds streams nobody consumes and cycles, and orders the stages
//! so that every stage comes after its inputs. Every mistake is reported, each at its span.

use std::collections::HashMap;

use proc_macro2::Span;
use syn::{Expr, Ident};

use crate::diag::{did_you_mean, Ctxt};
use crate::ops::{self, OpSpec, Role};
use crate::parse::{Call, Head, Lhs, Pipeline};

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

enum Pending {
    Resolved(PortRef),
    Named(Ident),
}

pub fn build<'a>(ast: &'a Pipeline, cx: &mut Ctxt) -> Option<Graph<'a>> {
    let mut stages: Vec<Stage<'a>> = Vec::new();
    let mut inputs: Vec<Vec<Pending>> = Vec::new();
    let mut names: HashMap<String, (Ident, PortRef)> = HashMap::new();
    let mut sinks = 0;
    // Names whose mistakes were reported already: no "never consumed" on top.
    let mut duplicates: Vec<Ident> = Vec::new();
    let mut suggested: Vec<String> = Vec::new();

    let new_stage =
        |stages: &mut Vec<Stage<'a>>, op: &'static OpSpec, call: &'a Call, ports: usize| {
            stages.push(Stage {
                op,
                call,
                inputs: Vec::new(),
                consumers: vec![Vec::new(); ports],
                bound: vec![None; ports],
                name: String::new(),
                label: call.label(),
            });
            stages.len() - 1
        };

    for stmt in &ast.stmts {
        // The stream flowing out of the chain so far: none before the head, then a port.
        let mut current: Option<Pending> = None;
        let mut last_stage: Option<usize> = None;
        let mut ended_by: Option<&Call> = None;
        let lhs_name = match &stmt.lhs {
            Lhs::One(name) => Some(name.to_string()),
            _ => None,
        };

        match &stmt.head {
            Head::Stream(name) => current = Some(Pending::Named(name.clone())),
            Head::Call(call) => match lookup(call, cx) {
                Some(op) if op.role == Role::Source => {
                    check_args(op, call, cx);
                    let id = new_stage(&mut stages, op, call, 1);
                    stages[id].name = lhs_name.clone().unwrap_or_else(|| format!("source{id}"));
                    inputs.push(Vec::new());
                    current = Some(Pending::Resolved((id, 0)));
                    last_stage = Some(id);
                }
                Some(op) if op.role == Role::Merge => {
                    let mut streams = Vec::new();
                    for arg in &call.args {
                        match arg {
                            Expr::Path(p) if p.path.get_ident().is_some() && p.qself.is_none() => {
                                streams.push(Pending::Named(p.path.get_ident().unwrap().clone()))
                            }
                            other => cx.error(
                                syn::spanned::Spanned::span(other),
                                "`merge` takes the names of the streams to merge: `merge(a, b)`",
                            ),
                        }
                    }
                    if call.args.len() < 2 {
                        cx.error(
                            call.name.span(),
                            "`merge` needs at least two streams: `merge(a, b)`",
                        );
                    }
                    let id = new_stage(&mut stages, op, call, 1);
                    inputs.push(streams);
                    current = Some(Pending::Resolved((id, 0)));
                    last_stage = Some(id);
                }
                Some(op) => {
                    cx.error(
                        call.name.span(),
                        format!(
                            "`{}` needs an input: start the chain with a stream, `read(..)` or `merge(..)`, as in `stream -> {}`",
                            op.name, op.usage
                        ),
                    );
                }
                None => {}
            },
        }

        for call in &stmt.calls {
            let Some(op) = lookup(call, cx) else {
                current = None;
                continue;
            };
            check_args(op, call, cx);
            if let Some(sink) = ended_by {
                cx.error(
                    call.name.span(),
                    format!(
                        "`{}` ends a chain, so `{}` cannot follow it; to use the stream further, bind it to a name before the sink (`s = ..;`) and consume it twice",
                        sink.name, op.name
                    ),
                );
                continue;
            }
            if matches!(op.role, Role::Source | Role::Merge) {
                cx.error(
                    call.name.span(),
                    format!("`{}` starts a chain, so it cannot follow `->`; start a new statement with it", op.name),
                );
                current = None;
                continue;
            }
            let ports = if op.role == Role::Partition {
                partition_arity(&stmt.lhs).max(1)
            } else {
                1
            };
            let id = new_stage(&mut stages, op, call, ports);
            inputs.push(current.take().into_iter().collect());
            last_stage = Some(id);
            if op.role == Role::Sink {
                ended_by = Some(call);
                if op.kind == "Sink" {
                    sinks += 1;
                    stages[id].name = format!("sink{sinks}");
                }
            } else {
                current = Some(Pending::Resolved((id, 0)));
            }
        }

        let chain_span =
            stmt.calls
                .last()
                .map(|c| c.name.span())
                .unwrap_or_else(|| match &stmt.head {
                    Head::Stream(n) => n.span(),
                    Head::Call(c) => c.name.span(),
                });
        let last_op = last_stage.map(|id| stages[id].op);
        if stmt.calls.is_empty() {
            if let Head::Stream(name) = &stmt.head {
                cx.error(
                    name.span(),
                    format!("`{name}` alone does nothing: add a stage after it, as in `{name} -> map(..)`"),
                );
                continue;
            }
        }
        let Some(last) = last_stage else { continue };
        let last_op = last_op.expect("set with last_stage");
        match &stmt.lhs {
            Lhs::None => {
                if last_op.role != Role::Sink {
                    cx.error(
                        chain_span,
                        "the stream this chain makes is never used: bind it to a name (`name = ..;`) or end the chain with `write(..)` or `drop()`",
                    );
                }
            }
            Lhs::One(name) => {
                if last_op.role == Role::Sink {
                    cx.error(
                        name.span(),
                        format!("`{}` ends the chain and makes no stream, so there is nothing to bind to `{name}`", last_op.name),
                    );
                } else if last_op.role == Role::Partition {
                    cx.error(
                        name.span(),
                        "`partition` makes several streams: bind one name per arm, as in `[a, b] = ..`",
                    );
                    // Still define it, so its uses do not add "unknown stream" errors.
                    define(&mut names, &mut duplicates, name, (last, 0), cx);
                } else {
                    define(&mut names, &mut duplicates, name, (last, 0), cx);
                    stages[last].bound[0] = Some(name.clone());
                }
            }
            Lhs::Many { span, names: bound } => {
                if last_op.role != Role::Partition {
                    cx.error(
                        *span,
                        format!(
                            "`[..] = ` binds the arms of a `partition`, but this chain ends with `{}`; bind a single stream as `name = ..`",
                            last_op.name
                        ),
                    );
                    continue;
                }
                if bound.is_empty() {
                    cx.error(*span, "bind at least one stream: `[a, b] = ..`");
                }
                if let Some(ratios) = literal_arms(stages[last].call) {
                    if ratios != bound.len() {
                        cx.error(
                            *span,
                            format!(
                                "{} streams are bound here, but the partition below has {} ratios; give one ratio per stream",
                                bound.len(),
                                ratios
                            ),
                        );
                    }
                }
                for (port, name) in bound.iter().enumerate() {
                    define(&mut names, &mut duplicates, name, (last, port), cx);
                    stages[last].bound[port] = Some(name.clone());
                }
            }
        }
    }

    // Resolve stream names now that every statement has defined its names (order is free).
    let known: Vec<&str> = {
        let mut k: Vec<&str> = names.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    };
    for (id, pending) in inputs.into_iter().enumerate() {
        for p in pending {
            match p {
                Pending::Resolved(from) => stages[id].inputs.push(Input { from, via: None }),
                Pending::Named(name) => match names.get(&name.to_string()) {
                    Some(&(_, from)) => stages[id].inputs.push(Input {
                        from,
                        via: Some(name),
                    }),
                    None => {
                        let hint = did_you_mean(&name.to_string(), known.iter().copied());
                        if let Some(meant) = hint.split('`').nth(1) {
                            suggested.push(meant.to_owned());
                        }
                        cx.error(name.span(), format!("unknown stream `{name}`{hint}"));
                    }
                },
            }
        }
    }
    for id in 0..stages.len() {
        for i in 0..stages[id].inputs.len() {
            let (from, port) = stages[id].inputs[i].from;
            stages[from].consumers[port].push(id);
        }
    }
    for stage in &stages {
        for (port, consumers) in stage.consumers.iter().enumerate() {
            if consumers.is_empty() && stage.op.role != Role::Sink {
                let reported = |n: &Ident| {
                    duplicates.iter().any(|d| d == n) || suggested.iter().any(|s| n == s)
                };
                if let Some(name) = stage.bound[port].as_ref().filter(|n| !reported(n)) {
                    cx.error(
                        name.span(),
                        format!("stream `{name}` is never consumed: use it in a chain (`{name} -> ..`), or end it with `{name} -> drop();` to discard it on purpose"),
                    );
                }
            }
        }
    }
    if !stages.iter().any(|s| s.op.role == Role::Source) {
        cx.error(
            ast.name.span(),
            "this pipeline reads nothing: start a chain with `read(..)`",
        );
    }

    let order = topological(&stages, cx)?;
    Some(Graph { stages, order })
}

fn lookup(call: &Call, cx: &mut Ctxt) -> Option<&'static OpSpec> {
    let name = call.name.to_string();
    let op = ops::lookup(&name);
    if op.is_none() {
        let all: Vec<&str> = ops::ALL.iter().map(|o| o.name).collect();
        cx.error(
            call.name.span(),
            format!(
                "unknown stage `{name}`{} (stages: {})",
                did_you_mean(&name, all.iter().copied()),
                all.join(", ")
            ),
        );
    }
    op
}

fn check_args(op: &OpSpec, call: &Call, cx: &mut Ctxt) {
    if let Some(n) = op.args {
        if call.args.len() != n {
            let takes = match n {
                0 => "no arguments".to_owned(),
                1 => "one argument".to_owned(),
                n => format!("{n} arguments"),
            };
            cx.error(
                call.name.span(),
                format!(
                    "`{}` takes {takes}, not {}: `{}`",
                    op.name,
                    call.args.len(),
                    op.usage
                ),
            );
        }
    }
}

fn define(
    names: &mut HashMap<String, (Ident, PortRef)>,
    duplicates: &mut Vec<Ident>,
    name: &Ident,
    port: PortRef,
    cx: &mut Ctxt,
) {
    let key = name.to_string();
    if let Some((first, _)) = names.get(&key) {
        duplicates.push(name.clone());
        let mut e = syn::Error::new(name.span(), format!("stream `{name}` is defined twice"));
        e.combine(syn::Error::new(
            first.span(),
            format!("`{name}` is first defined here"),
        ));
        cx.push(e);
    } else {
        names.insert(key, (name.clone(), port));
    }
}

fn partition_arity(lhs: &Lhs) -> usize {
    match lhs {
        Lhs::Many { names, .. } => names.len(),
        _ => 1,
    }
}

/// The number of ratios of `partition(split_by(f, [..]))` or `partition(split_random(s, [..]))`,
/// when written as a literal array.
fn literal_arms(call: &Call) -> Option<usize> {
    let Some(Expr::Call(inner)) = call.args.first() else {
        return None;
    };
    let Expr::Path(f) = &*inner.func else {
        return None;
    };
    let name = f.path.segments.last()?.ident.to_string();
    if name != "split_by" && name != "split_random" {
        return None;
    }
    match inner.args.iter().nth(1) {
        Some(Expr::Array(a)) => Some(a.elems.len()),
        _ => None,
    }
}

/// Kahn's algorithm; a leftover stage means a cycle of stream names.
fn topological(stages: &[Stage], cx: &mut Ctxt) -> Option<Vec<usize>> {
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
        return Some(order);
    }
    for (id, stage) in stages.iter().enumerate() {
        if waiting[id] > 0 {
            let in_cycle = stage
                .inputs
                .iter()
                .filter(|i| waiting[i.from.0] > 0)
                .find_map(|i| i.via.as_ref());
            if let Some(via) = in_cycle {
                cx.error(
                    via.span(),
                    format!("stream `{via}` is part of a cycle: a stream cannot be computed from itself"),
                );
                return None;
            }
        }
    }
    cx.error(Span::call_site(), "the pipeline's streams form a cycle");
    None
}
