//! The `pipeline!` macro. This file is only the entry point; each phase is a module:
//!
//! parse (tokens -> syntax tree) -> graph (names, arity, checks) -> fuse (segments) -> expand (code)
//!
//! Errors are collected in a [`diag::Ctxt`] and all reported at once, each at its span; after an
//! error a stand-in item is still emitted ([`fallback`]) so that one mistake in the pipeline does
//! not bring a cascade of "cannot find type" errors in the code that uses it.

mod diag;
mod expand;
mod fallback;
mod fuse;
mod graph;
mod ops;
mod parse;

use proc_macro::TokenStream;

/// Declares a typed multi-model pipeline. See the `tandem` crate's documentation and README.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    let ast = match syn::parse::<parse::Pipeline>(input) {
        Ok(ast) => ast,
        Err(e) => return e.to_compile_error().into(),
    };
    let mut cx = diag::Ctxt::new();
    let graph = graph::build(&ast, &mut cx);
    match (graph, cx.check()) {
        (Some(graph), Ok(())) => {
            let plan = fuse::plan(&graph);
            expand::pipeline(&ast, &graph, &plan).into()
        }
        (_, Err(errors)) => {
            let mut out = fallback::stand_in(&ast);
            out.extend(errors.to_compile_error());
            out.into()
        }
        (None, Ok(())) => unreachable!("graph::build reports why it failed"),
    }
}
