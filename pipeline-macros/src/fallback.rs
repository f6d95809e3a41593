//! What is emitted when the pipeline has errors: the type with its usual API, so that code using
//! it (`MyPipeline::main()`, `MyPipeline::run(..)`) compiles and only the real mistakes are shown.

use proc_macro2::TokenStream;
use quote::quote;

use crate::parse::Pipeline;

pub fn stand_in(ast: &Pipeline) -> TokenStream {
    let Pipeline {
        attrs, vis, name, ..
    } = ast;
    let args_ty = crate::expand::args_type(ast);
    let api = crate::expand::api(name, &args_ty);
    let name_str = name.to_string();
    quote! {
        #(#attrs)*
        #vis struct #name;

        const _: () = {
            static __GRAPH: ::tandem::__private::Graph = ::tandem::__private::Graph {
                name: #name_str,
                doc: "",
                stages: &[],
                edges: &[],
            };
            impl ::tandem::__private::Pipeline for #name {
                type Args = #args_ty;
                const NAME: &'static str = #name_str;
                fn graph() -> &'static ::tandem::__private::Graph {
                    &__GRAPH
                }
                fn build<'scope, 'env: 'scope>(
                    _: &'env Self::Args,
                    _: &mut ::tandem::__private::Executor<'scope, 'env>,
                ) -> ::tandem::__private::Result<()> {
                    ::tandem::__private::std::unreachable!()
                }
            }

            #api
        };
    }
}
