//! Tokens -> syntax tree. Parsing only: names and arities are checked by `graph`.
//!
//! ```text
//! pipeline  := attr* vis NAME ( '(' ARGNAME ':' TYPE ')' )? '{' stmt* '}'
//! stmt      := ( NAME '=' | '[' NAME,* ']' '=' )? head ( '->' call )* ';'
//! head      := NAME | call            // a stream, or read(..) / merge(..)
//! call      := NAME '(' expr,* ')'
//! ```

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, bracketed, parenthesized, Attribute, Expr, Ident, Token, Type, Visibility};

pub struct Pipeline {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub args: Option<(Ident, Type)>,
    pub stmts: Vec<Stmt>,
}

pub enum Lhs {
    None,
    One(Ident),
    Many { span: Span, names: Vec<Ident> },
}

pub struct Stmt {
    pub lhs: Lhs,
    pub head: Head,
    pub calls: Vec<Call>,
}

pub enum Head {
    Stream(Ident),
    Call(Call),
}

/// `name(args)`: a stage.
pub struct Call {
    pub name: Ident,
    pub args: Punctuated<Expr, Token![,]>,
    /// The parentheses, for the stage's label.
    pub paren_span: Span,
    pub arg_tokens: TokenStream,
}

impl Call {
    /// The stage as written: `map(|p| p.score * 2.0)`.
    pub fn label(&self) -> String {
        let inner = self
            .paren_span
            .source_text()
            .unwrap_or_else(|| format!("({})", tidy(&self.arg_tokens.to_string())));
        let label = format!("{}{}", self.name, squeeze(&inner));
        if label.chars().count() > 72 {
            let cut: String = label.chars().take(70).collect();
            format!("{cut}..)")
        } else {
            label
        }
    }
}

/// Collapses runs of whitespace (a multi-line closure becomes one line).
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Undoes the spacing `TokenStream::to_string` adds, for spans without source text.
fn tidy(text: &str) -> String {
    let mut out = text.to_owned();
    for (from, to) in [
        (" :: ", "::"),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
        (" ,", ","),
        (" .", "."),
        (". ", "."),
        ("& ", "&"),
    ] {
        out = out.replace(from, to);
    }
    out
}

impl Parse for Pipeline {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let name: Ident = input.parse()?;
        let args = if input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in input);
            if content.is_empty() {
                None
            } else {
                let arg: Ident = content.parse()?;
                content.parse::<Token![:]>()?;
                let ty: Type = content.parse()?;
                if !content.is_empty() {
                    return Err(content.error("a pipeline takes one argument: `(args: YourArgs)`"));
                }
                Some((arg, ty))
            }
        } else {
            None
        };
        let body;
        braced!(body in input);
        let mut stmts = Vec::new();
        while !body.is_empty() {
            stmts.push(body.parse()?);
        }
        if !input.is_empty() {
            return Err(input
                .error("one pipeline per `pipeline!`; put the next one in its own `pipeline!`"));
        }
        Ok(Self {
            attrs,
            vis,
            name,
            args,
            stmts,
        })
    }
}

impl Parse for Stmt {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lhs = if input.peek(syn::token::Bracket) {
            let content;
            let bracket = bracketed!(content in input);
            let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            input.parse::<Token![=]>()?;
            Lhs::Many {
                span: bracket.span.join(),
                names: names.into_iter().collect(),
            }
        } else if input.peek(Ident)
            && input.peek2(Token![=])
            && !input.peek2(Token![==])
            && !input.peek2(Token![=>])
        {
            let name = input.parse()?;
            input.parse::<Token![=]>()?;
            Lhs::One(name)
        } else {
            Lhs::None
        };
        let head = if input.peek(Ident) && input.peek2(syn::token::Paren) {
            Head::Call(input.parse()?)
        } else {
            Head::Stream(input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a stream name, `read(..)` or `merge(..)` to start the chain",
                )
            })?)
        };
        let mut calls = Vec::new();
        while input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            calls.push(input.parse()?);
        }
        if !input.peek(Token![;]) {
            return Err(
                input.error("expected `->` and the next stage, or `;` to end the statement")
            );
        }
        input.parse::<Token![;]>()?;
        Ok(Self { lhs, head, calls })
    }
}

impl Parse for Call {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        if !input.peek(syn::token::Paren) {
            return Err(syn::Error::new(
                name.span(),
                format!("expected a stage call like `{name}(..)`; stages take their arguments in parentheses"),
            ));
        }
        let content;
        let paren = parenthesized!(content in input);
        let arg_tokens: TokenStream = content.fork().parse()?;
        let args = Punctuated::parse_terminated(&content)?;
        Ok(Self {
            name,
            args,
            paren_span: paren.span.join(),
            arg_tokens,
        })
    }
}
