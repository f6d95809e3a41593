//! Graph + plan -> code.
//!
//! The generated `build` works in three steps:
//! 1. types flow forward: one statement per stage, in topological order, calls the stage's typed
//!    constructor with the marker of its input stream, spanned at the stage, so each edge is
//!    checked on its own and a mistake is reported where it is;
//! 2. a bounded channel is made in front of each boundary;
//! 3. each segment is assembled inside-out into one nested value and handed to the executor.
//!
//! Generated code names everything by absolute path (`::tandem::__private::..`) and lives in
//! `const _: () = { .. };` so it adds no names to the user's module.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident};

use crate::fuse::Plan;
use crate::graph::{Graph, PortRef};
use crate::ops::Role;
use crate::parse::Pipeline;

pub fn pipeline(ast: &Pipeline, graph: &Graph, plan: &Plan) -> TokenStream {
    let Pipeline {
        attrs, vis, name, ..
    } = ast;
    let name_str = name.to_string();
    let doc = doc_text(ast);
    let args_ty = args_type(ast);
    let args_name = match &ast.args {
        Some((ident, _)) => ident.clone(),
        None => Ident::new("args", Span::call_site()),
    };

    let stage_infos = graph.stages.iter().map(|s| {
        let kind = Ident::new(s.op.kind, Span::call_site());
        let (label, stage_name) = (&s.label, &s.name);
        let line = s.span().start().line as u32;
        quote! {
            ::tandem::__private::StageInfo {
                kind: ::tandem::__private::StageKind::#kind,
                name: #stage_name,
                label: #label,
                line: #line,
            }
        }
    });
    let edges = graph.stages.iter().enumerate().flat_map(|(to, s)| {
        s.inputs.iter().map(move |input| {
            let (from, port) = input.from;
            let stream = graph.stages[from].bound[port]
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default();
            let (from, port, to) = (from as u32, port as u32, to as u32);
            quote!(::tandem::__private::Edge { from: #from, port: #port, to: #to, stream: #stream })
        })
    });
    let stage_count = graph.stages.len();
    let edge_count: usize = graph.stages.iter().map(|s| s.inputs.len()).sum();

    let typed = graph.order.iter().map(|&id| typed_stage(graph, id));
    let fan_out = fan_out_checks(graph);
    let channels = graph
        .stages
        .iter()
        .enumerate()
        .filter(|&(id, s)| plan.channel[id] && s.op.role == Role::Merge)
        .map(|(id, s)| {
            let (tx, rx) = (format_ident!("__tx{}", id), format_ident!("__rx{}", id));
            let merged = format_ident!("__m{}", id);
            let (id32, senders) = (id as u32, s.inputs.len());
            quote!(let (#tx, #rx) = ::tandem::__private::channel_for(&#merged, __ex, #id32, #senders);)
        });
    let sames = graph
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.op.role == Role::Merge)
        .map(|(id, s)| {
            let same = format_ident!("__same{}", id);
            let first = marker(graph, s.inputs[0].from);
            quote!(let #same = ::tandem::__private::same(&#first);)
        });
    let segments: Vec<TokenStream> = graph
        .stages
        .iter()
        .enumerate()
        .filter(|&(id, s)| s.op.role == Role::Source || plan.channel[id])
        .map(|(head, s)| segment(graph, plan, head, s.op.role))
        .collect();
    let api = api(name, &args_ty);

    quote! {
        #(#attrs)*
        #vis struct #name;

        const _: () = {
            static __STAGES: [::tandem::__private::StageInfo; #stage_count] = [#(#stage_infos),*];
            static __EDGES: [::tandem::__private::Edge; #edge_count] = [#(#edges),*];
            static __GRAPH: ::tandem::__private::Graph = ::tandem::__private::Graph {
                name: #name_str,
                doc: #doc,
                stages: &__STAGES,
                edges: &__EDGES,
            };

            impl ::tandem::__private::Pipeline for #name {
                type Args = #args_ty;
                const NAME: &'static str = #name_str;

                fn graph() -> &'static ::tandem::__private::Graph {
                    &__GRAPH
                }

                #[allow(unused_variables, clippy::all)]
                fn build<'scope, 'env: 'scope>(
                    #args_name: &'env #args_ty,
                    __ex: &mut ::tandem::__private::Executor<'scope, 'env>,
                ) -> ::tandem::__private::Result<()> {
                    #(#typed)*
                    #(#fan_out)*
                    #(#sames)*
                    #(#channels)*
                    let __batch = __ex.batch_size();
                    #(#segments)*
                    ::tandem::__private::std::result::Result::Ok(())
                }
            }

            #api
        };
    }
}

/// The inherent API of a pipeline type, shared with the fallback.
pub fn api(name: &Ident, args_ty: &TokenStream) -> TokenStream {
    quote! {
        #[allow(dead_code)]
        impl #name {
            /// The pipeline's graph; `.mermaid()` and `.dot()` render it.
            pub fn graph() -> &'static ::tandem::__private::Graph {
                <Self as ::tandem::__private::Pipeline>::graph()
            }

            /// Runs the pipeline to the end on this thread (stages get threads of their own).
            pub fn run_blocking(
                args: &#args_ty,
                config: &::tandem::__private::RunConfig,
            ) -> ::tandem::__private::Result<::tandem::__private::Summary> {
                ::tandem::__private::run_pipeline::<Self>(args, config)
            }

            /// Runs the pipeline to the end without blocking the async caller.
            pub async fn run(
                args: #args_ty,
                config: ::tandem::__private::RunConfig,
            ) -> ::tandem::__private::Result<::tandem::__private::Summary> {
                ::tandem::__private::run_async::<Self>(args, config).await
            }
        }
    }
}

pub fn args_type(ast: &Pipeline) -> TokenStream {
    match &ast.args {
        Some((_, ty)) => quote!(#ty),
        None => quote!(::tandem::__private::NoArgs),
    }
}

fn doc_text(ast: &Pipeline) -> String {
    let lines: Vec<String> = ast
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join("\n")
}

/// The marker variable of a stream.
fn marker(graph: &Graph, port: PortRef) -> Ident {
    marker_at(graph, port, Span::call_site())
}

/// The marker variable of a stream, spanned where it is checked: rustc reports a failed check
/// once per span, so every token of a check carries the stage's span.
fn marker_at(graph: &Graph, (stage, port): PortRef, span: Span) -> Ident {
    if graph.stages[stage].op.role == Role::Partition {
        format_ident!("__m{}_{}", stage, port, span = span)
    } else {
        format_ident!("__m{}", stage, span = span)
    }
}

/// Closures in stage arguments run on the segment's thread after `build` returns, so they must
/// not borrow `build`'s locals; the only local they can name is `args`, a shared reference, so
/// capturing by `move` (a copy of that reference) is what the user means.
struct MoveClosures;

impl VisitMut for MoveClosures {
    fn visit_expr_closure_mut(&mut self, closure: &mut syn::ExprClosure) {
        if closure.capture.is_none() {
            closure.capture = Some(syn::Token![move](closure.or1_token.span));
        }
        syn::visit_mut::visit_expr_closure_mut(self, closure);
    }
}

/// The stage's arguments, comma-separated, closures made `move`; `None` without arguments.
fn stage_args(graph: &Graph, id: usize) -> Option<TokenStream> {
    let args = &graph.stages[id].call.args;
    if args.is_empty() {
        return None;
    }
    let args = args.iter().map(|arg| {
        let mut arg = arg.clone();
        MoveClosures.visit_expr_mut(&mut arg);
        arg
    });
    Some(quote!(#(#args),*))
}

/// Step 1 for one stage: its typed constructor, spanned at the stage.
fn typed_stage(graph: &Graph, id: usize) -> TokenStream {
    let stage = &graph.stages[id];
    let span = stage.span();
    let id32 = id as u32;
    let after_model = stage
        .inputs
        .first()
        .is_some_and(|i| graph.stages[i.from.0].op.loads);
    let check = match stage.op.after_model {
        Some(name) if after_model => Ident::new(name, span),
        _ => Ident::new(stage.op.check, span),
    };
    let op = format_ident!("__op{}", id, span = span);
    let out = format_ident!("__m{}", id, span = span);
    let arg = stage_args(graph, id);
    let input = stage.inputs.first().map(|i| marker_at(graph, i.from, span));
    match stage.op.role {
        Role::Source => {
            let src = format_ident!("__src{}", id, span = span);
            quote_spanned!(span=> let (#src, #out) = ::tandem::__private::#check(#arg);)
        }
        Role::Merge => {
            let others = stage.inputs.iter().enumerate().skip(1).map(|(n, i)| {
                let at = i.via.as_ref().map_or(span, Ident::span);
                let merged = format_ident!("__m{}", id, span = at);
                let (other, into) = (marker_at(graph, i.from, at), format_ident!("__into{}_{}", id, n, span = at));
                quote_spanned!(at=> let #into = ::tandem::__private::merge_input(&#merged, &#other);)
            });
            quote_spanned!(span=> let #out = ::tandem::__private::#check(&#input); #(#others)*)
        }
        // The handler first, so that the stream is compared with a known input type.
        Role::Element if stage.op.loads => {
            let rx = format_ident!("__rx{}", id, span = span);
            let handler = format_ident!("__handler{}", id, span = span);
            quote_spanned!(span=>
                let #handler = ::tandem::__private::handler(#arg);
                let (#op, #out) = ::tandem::__private::#check(#handler, &#input);
                let (#op, #rx) = __ex.#check(#id32, #op)?;
            )
        }
        Role::Element => {
            quote_spanned!(span=> let (#op, #out) = ::tandem::__private::#check(&#input, #id32, #arg);)
        }
        Role::Partition => {
            let arms = stage.consumers.len();
            let outs = (0..arms).map(|p| format_ident!("__m{}_{}", id, p, span = span));
            quote_spanned!(span=>
                let (#op, [#(#outs),*]) = ::tandem::__private::#check::<_, _, _, #arms>(&#input, #id32, #arg);
            )
        }
        Role::Sink => match arg {
            Some(arg) => quote_spanned!(span=>
                let #op = __ex.sink(#id32, ::tandem::__private::#check(&#input, #arg))?;
            ),
            None => quote_spanned!(span=> let #op = ::tandem::__private::#check(&#input, #id32);),
        },
    }
}

/// A stream consumed more than once is copied, so its type must be `Clone`: checked once, where
/// the second consumer names the stream.
fn fan_out_checks(graph: &Graph) -> Vec<TokenStream> {
    let mut checks = Vec::new();
    for (id, stage) in graph.stages.iter().enumerate() {
        for port in 0..stage.consumers.len() {
            let consumers = graph.consumers((id, port));
            let Some(&second) = consumers.get(1) else {
                continue;
            };
            let at = graph.stages[second]
                .inputs
                .iter()
                .find(|i| i.from == (id, port))
                .and_then(|i| i.via.as_ref())
                .map_or(graph.stages[second].span(), Ident::span);
            let m = marker_at(graph, (id, port), at);
            let checked = format_ident!("__fan{}_{}", id, port, span = at);
            checks.push(quote_spanned!(at=> let #checked = ::tandem::__private::fan_out(&#m);));
        }
    }
    checks
}

/// Step 3 for one segment: its stages nested into one value, built on the segment's thread.
fn segment(graph: &Graph, plan: &Plan, head: usize, role: Role) -> TokenStream {
    let mut cx = Segment {
        senders: Vec::new(),
    };
    let body = consumers(graph, plan, (head, 0), &mut cx);
    // Junctions downstream first: a junction's chain may feed a later one.
    let mut junctions = Vec::new();
    for &id in graph.order.iter().rev() {
        if plan.junction[id] && plan.segment[id] == head {
            let junction = format_ident!("__j{}", id);
            let chain = consumers(graph, plan, (id, 0), &mut cx);
            let (id32, inputs) = (id as u32, graph.stages[id].inputs.len());
            junctions.push(quote! {
                let #junction = ::tandem::__private::Junction::new(
                    ::tandem::__private::Merge::new(#id32).then(#chain),
                    #inputs,
                );
            });
        }
    }
    let senders = cx.senders.iter().map(|tx| {
        let local = format_ident!("{}_s{}", tx, head);
        quote!(let #local = #tx.clone();)
    });
    let head32 = head as u32;
    let start = match role {
        Role::Source => {
            let src = format_ident!("__src{}", head);
            quote!(__ex.source(#head32, #src, move || { #(#junctions)* #body })?;)
        }
        Role::Merge => {
            let rx = format_ident!("__rx{}", head);
            quote! {
                __ex.receive(#rx, move || {
                    #(#junctions)*
                    ::tandem::__private::Merge::new(#head32).then(#body)
                });
            }
        }
        // The results of a `run_inference` stage (counted by the stage itself).
        _ => {
            let rx = format_ident!("__rx{}", head);
            quote! {
                __ex.receive(#rx, move || {
                    #(#junctions)*
                    #body
                });
            }
        }
    };
    quote!({ #(#senders)* #start })
}

/// What a segment being built needs from outside: the channels it sends into.
struct Segment {
    senders: Vec<Ident>,
}

/// What elements of `port` are pushed into.
fn consumers(graph: &Graph, plan: &Plan, port: PortRef, cx: &mut Segment) -> TokenStream {
    let list = graph.consumers(port);
    // Which input of each consumer this port is (a merge may name one stream twice).
    let mut taken: Vec<usize> = Vec::new();
    let mut chains: Vec<TokenStream> = list
        .iter()
        .map(|&c| {
            let nth = taken.iter().filter(|&&t| t == c).count();
            taken.push(c);
            let input = graph.stages[c]
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| i.from == port)
                .nth(nth)
                .map_or(0, |(n, _)| n);
            stage_chain(graph, plan, c, input, cx)
        })
        .collect();
    if chains.len() == 1 {
        return chains.pop().expect("one chain");
    }
    let producer = port.0 as u32;
    let checked = format_ident!("__fan{}_{}", port.0, port.1);
    let nested = chains
        .into_iter()
        .rev()
        .fold(quote!(()), |rest, head| quote!((#head, #rest)));
    quote!(::tandem::__private::Tee::new(#producer, #checked, #nested))
}

/// A stage and everything fused after it; `input` is which of the stage's inputs feeds it.
fn stage_chain(
    graph: &Graph,
    plan: &Plan,
    id: usize,
    input: usize,
    cx: &mut Segment,
) -> TokenStream {
    let op = format_ident!("__op{}", id);
    let stage = &graph.stages[id];
    match stage.op.role {
        Role::Merge => {
            let into = if input == 0 {
                format_ident!("__same{}", id)
            } else {
                format_ident!("__into{}_{}", id, input)
            };
            if plan.junction[id] {
                let junction = format_ident!("__j{}", id);
                return quote!(#junction.input(#into));
            }
            let tx = format_ident!("__tx{}", id);
            let local = format_ident!("{}_s{}", tx, plan.segment[stage.inputs[input].from.0]);
            if !cx.senders.contains(&tx) {
                cx.senders.push(tx);
            }
            quote!(::tandem::__private::channel_out(#local.clone(), #into, __batch))
        }
        // A `run_inference` stage's front: what comes after it is in a segment of its own.
        Role::Element if plan.channel[id] => quote!(#op),
        Role::Element => {
            let next = consumers(graph, plan, (id, 0), cx);
            quote!(#op.then(#next))
        }
        Role::Partition => {
            let arms = (0..stage.consumers.len())
                .rev()
                .fold(quote!(()), |rest, p| {
                    let arm = consumers(graph, plan, (id, p), cx);
                    quote!((#arm, #rest))
                });
            quote!(#op.then(#arms))
        }
        Role::Sink => quote!(#op),
        Role::Source => unreachable!("sources head their own segments"),
    }
}
