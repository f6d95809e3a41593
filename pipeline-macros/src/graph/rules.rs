//! The graph's rules, one function each: it reports the mistake at its span into the [`Ctxt`]
//! and, where the builder goes on differently after it, returns whether the rule held. What an
//! operator may do comes from its spec ([`OpSpec`]), never from its name.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use super::Stage;
use crate::diag::{closest, did_you_mean, Ctxt};
use crate::ops::{self, OpSpec, Role};
use crate::parse::{Call, Pipeline};

/// Every stage is an operator of the table; `None` (reported, with the closest name) if not.
pub fn known_stage(call: &Call, cx: &mut Ctxt) -> Option<&'static OpSpec> {
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

/// A stage gets as many arguments as its operator takes.
pub fn argument_count(op: &OpSpec, call: &Call, cx: &mut Ctxt) {
    let Some(n) = op.args else { return };
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

/// A merge's arguments are stream names; returns those that are.
pub fn merge_of_names(op: &OpSpec, call: &Call, cx: &mut Ctxt) -> Vec<Ident> {
    let mut streams = Vec::new();
    for arg in &call.args {
        match arg {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                streams.extend(p.path.get_ident().cloned());
            }
            other => cx.error(
                other.span(),
                format!(
                    "`{}` takes the names of the streams to merge: `{}`",
                    op.name, op.usage
                ),
            ),
        }
    }
    streams
}

/// A merge has two streams or more.
pub fn merge_of_two_or_more(op: &OpSpec, call: &Call, cx: &mut Ctxt) {
    if call.args.len() < 2 {
        cx.error(
            call.name.span(),
            format!("`{}` needs at least two streams: `{}`", op.name, op.usage),
        );
    }
}

/// Only a source or a merge heads a chain; any other operator needs a stream in front of it.
/// Called for those others.
pub fn needs_an_input(op: &OpSpec, call: &Call, cx: &mut Ctxt) {
    cx.error(
        call.name.span(),
        format!(
            "`{}` needs an input: start the chain with a stream, `read(..)` or `merge(..)`, as in `stream -> {}`",
            op.name, op.usage
        ),
    );
}

/// Nothing follows a sink in a chain (`sink` is the one that ended it, if any).
pub fn nothing_after_a_sink(sink: Option<&Call>, op: &OpSpec, call: &Call, cx: &mut Ctxt) -> bool {
    let Some(sink) = sink else { return true };
    cx.error(
        call.name.span(),
        format!(
            "`{}` ends a chain, so `{}` cannot follow it; to use the stream further, bind it to a name before the sink (`s = ..;`) and consume it twice",
            sink.name, op.name
        ),
    );
    false
}

/// An operator that starts a chain does not follow `->`.
pub fn starts_no_chain_after_arrow(op: &OpSpec, call: &Call, cx: &mut Ctxt) -> bool {
    if !op.role.starts_chain() {
        return true;
    }
    cx.error(
        call.name.span(),
        format!(
            "`{}` starts a chain, so it cannot follow `->`; start a new statement with it",
            op.name
        ),
    );
    false
}

/// A statement is more than a stream name. Called for a statement that is only `name;`.
pub fn stream_alone(name: &Ident, cx: &mut Ctxt) {
    cx.error(
        name.span(),
        format!("`{name}` alone does nothing: add a stage after it, as in `{name} -> map(..)`"),
    );
}

/// A chain bound to nothing ends with a sink (`op` is its last stage).
pub fn result_used(op: &OpSpec, chain: Span, cx: &mut Ctxt) {
    if !op.role.ends_chain() {
        cx.error(
            chain,
            "the stream this chain makes is never used: bind it to a name (`name = ..;`) or end the chain with `write(..)` or `drop()`",
        );
    }
}

/// A chain bound to `name` makes a stream: it does not end with a sink.
pub fn makes_a_stream(op: &OpSpec, name: &Ident, cx: &mut Ctxt) -> bool {
    if !op.role.ends_chain() {
        return true;
    }
    cx.error(
        name.span(),
        format!(
            "`{}` ends the chain and makes no stream, so there is nothing to bind to `{name}`",
            op.name
        ),
    );
    false
}

/// A chain bound to one name makes one stream: it does not end with a partition.
pub fn makes_one_stream(op: &OpSpec, name: &Ident, cx: &mut Ctxt) -> bool {
    if op.role != Role::Partition {
        return true;
    }
    cx.error(
        name.span(),
        format!(
            "`{}` makes several streams: bind one name per arm, as in `[a, b] = ..`",
            op.name
        ),
    );
    false
}

/// `[..] = ` binds the arms of a partition: the chain ends with one.
pub fn arms_of_a_partition(op: &OpSpec, span: Span, cx: &mut Ctxt) -> bool {
    if op.role == Role::Partition {
        return true;
    }
    cx.error(
        span,
        format!(
            "`[..] = ` binds the arms of a `partition`, but this chain ends with `{}`; bind a single stream as `name = ..`",
            op.name
        ),
    );
    false
}

/// `[..] = ` binds at least one name.
pub fn at_least_one_arm(names: &[Ident], span: Span, cx: &mut Ctxt) {
    if names.is_empty() {
        cx.error(span, "bind at least one stream: `[a, b] = ..`");
    }
}

/// As many names are bound as the partition has ratios, when they are written as a literal array.
pub fn one_ratio_per_arm(op: &OpSpec, call: &Call, names: &[Ident], span: Span, cx: &mut Ctxt) {
    let Some(ratios) = literal_ratios(op, call) else {
        return;
    };
    if ratios != names.len() {
        cx.error(
            span,
            format!(
                "{} streams are bound here, but the partition below has {} ratios; give one ratio per stream",
                names.len(),
                ratios
            ),
        );
    }
}

/// The number of ratios of `partition(splitter(_, [..]))` for the splitters of the operator's
/// [`Arms`](crate::ops::Arms), when written as a literal array.
fn literal_ratios(op: &OpSpec, call: &Call) -> Option<usize> {
    let arms = op.arms.as_ref()?;
    let Some(Expr::Call(inner)) = call.args.first() else {
        return None;
    };
    let Expr::Path(f) = &*inner.func else {
        return None;
    };
    let splitter = f.path.segments.last()?.ident.to_string();
    if !arms.splitters.contains(&splitter.as_str()) {
        return None;
    }
    match inner.args.iter().nth(arms.ratios) {
        Some(Expr::Array(a)) => Some(a.elems.len()),
        _ => None,
    }
}

/// A stream name is defined once (`first` is where it was defined before, if it was).
pub fn defined_once(first: Option<&Ident>, name: &Ident, cx: &mut Ctxt) -> bool {
    let Some(first) = first else { return true };
    // One error per mistake: where it was first defined goes into the message (a proc macro
    // cannot attach a note on stable Rust).
    let line = first.span().start().line;
    cx.push(syn::Error::new(
        name.span(),
        format!(
            "stream `{name}` is defined twice (first on line {line}); give this one another name"
        ),
    ));
    false
}

/// A stream used as an input is defined somewhere. Called for one that is not: returns the name
/// suggested instead, if one is close.
pub fn unknown_stream<'k>(name: &Ident, known: &[&'k str], cx: &mut Ctxt) -> Option<&'k str> {
    let wrong = name.to_string();
    let hint = did_you_mean(&wrong, known.iter().copied());
    cx.error(name.span(), format!("unknown stream `{name}`{hint}"));
    closest(&wrong, known.iter().copied())
}

/// Every named stream is consumed, unless its name was reported already (`reported`).
pub fn every_stream_consumed(stages: &[Stage], reported: &[String], cx: &mut Ctxt) {
    for stage in stages {
        if stage.op.role.ends_chain() {
            continue;
        }
        for (consumers, name) in stage.consumers.iter().zip(&stage.bound) {
            let Some(name) = name else { continue };
            if consumers.is_empty() && !reported.iter().any(|r| name == r) {
                cx.error(
                    name.span(),
                    format!("stream `{name}` is never consumed: use it in a chain (`{name} -> ..`), or end it with `{name} -> drop();` to discard it on purpose"),
                );
            }
        }
    }
}

/// A pipeline reads something: one of its stages is a source.
pub fn reads_something(ast: &Pipeline, stages: &[Stage], cx: &mut Ctxt) {
    if !stages.iter().any(|s| s.op.role == Role::Source) {
        cx.error(
            ast.name.span(),
            "this pipeline reads nothing: start a chain with `read(..)`",
        );
    }
}

/// The streams form no cycle. Called when some stages could not be ordered: `waiting` is how many
/// inputs each still waits for; the first stream name seen on a cycle is reported.
pub fn no_cycle(stages: &[Stage], waiting: &[usize], cx: &mut Ctxt) {
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
                return;
            }
        }
    }
    cx.error(Span::call_site(), "the pipeline's streams form a cycle");
}
