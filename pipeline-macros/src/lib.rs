use proc_macro::TokenStream; #[proc_macro] pub fn pipeline(t: TokenStream) -> TokenStream { t }
