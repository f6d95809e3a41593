//! A Unix-style filter: JSON lines in on stdin, the objects whose field matches out on stdout,
//! everything else counted. Shows stdin/stdout sources and sinks and untyped JSON values.
//!
//! ```text
//! cargo run -q --example jsonl_grep -- --field arm --equals champion < served.jsonl > champion.jsonl
//! ```

use std::process::ExitCode;

use serde_json::Value;
use tandem::prelude::*;

#[derive(Debug, clap::Args)]
struct GrepArgs {
    /// The field to look at.
    #[arg(long)]
    field: String,
    /// Keep the objects whose field equals this (compared as text).
    #[arg(long)]
    equals: String,
}

fn field_text(value: &Value, field: &str) -> Option<String> {
    match value.get(field)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pipeline! {
    /// Keeps the JSON objects from stdin whose `--field` equals `--equals`.
    JsonlGrep(args: GrepArgs) {
        read(JsonLines::<Value>::stdin())
            -> filter(|v: &Value| field_text(v, &args.field).as_deref() == Some(args.equals.as_str()))
            -> write(JsonLines::stdout());
    }
}

fn main() -> ExitCode {
    JsonlGrep::main()
}
