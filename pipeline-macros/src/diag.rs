//! Collecting errors instead of stopping at the first (serde_derive's `Ctxt` habit).

use std::fmt::Display;

use proc_macro2::Span;

#[derive(Default)]
pub struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, span: Span, message: impl Display) {
        self.errors.push(syn::Error::new(span, message));
    }

    pub fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// All errors combined into one, if there were any.
    pub fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut first) => {
                first.extend(errors);
                Err(first)
            }
        }
    }
}

/// ", did you mean `x`?" when a known name is close to `wrong`.
pub fn did_you_mean<'a>(wrong: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match closest(wrong, known) {
        Some(k) => format!(", did you mean `{k}`?"),
        None => String::new(),
    }
}

/// The known name closest to `wrong`, if one is close enough to suggest.
pub fn closest<'a>(wrong: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(wrong, k), k))
        .filter(|&(d, k)| d <= 2.max(k.len() / 3) && d < k.len().max(wrong.len()))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}
