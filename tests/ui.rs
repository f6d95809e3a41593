//! Compile-time checks: each case under `tests/ui/fail` is a mistake a user can make, named after
//! it, with the message rustc shows in its `.stderr`. Cases under `tests/ui/pass` must build.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui`, then read them.

use std::fs;
use std::path::Path;

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

/// One mistake, one error: every fail case's `.stderr` (which `ui` proves is what rustc says)
/// holds exactly one error per mistake in its case — one, unless the case declares
/// `// mistakes: N` — and none of them points at the `pipeline!` call instead of a stage.
#[test]
fn every_mistake_is_reported_once_at_its_stage() {
    let mut wrong = Vec::new();
    let mut cases = 0;
    for entry in fs::read_dir("tests/ui/fail").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        cases += 1;
        let source = fs::read_to_string(&path).unwrap();
        let stderr_path = path.with_extension("stderr");
        let stderr = fs::read_to_string(&stderr_path)
            .unwrap_or_else(|e| panic!("{}: {e}", stderr_path.display()));
        let mistakes = declared_mistakes(&source);
        let errors = errors(&stderr, &path);
        if errors.len() != mistakes {
            wrong.push(format!(
                "{}: {} error(s) for {mistakes} mistake(s): {:?}",
                stderr_path.display(),
                errors.len(),
                errors.iter().map(|e| &e.message).collect::<Vec<_>>()
            ));
        }
        let macro_lines: Vec<usize> = source
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("pipeline!"))
            .map(|(n, _)| n + 1)
            .collect();
        for error in &errors {
            if error.line.is_some_and(|l| macro_lines.contains(&l)) {
                wrong.push(format!(
                    "{}: `{}` points at the `pipeline!` call, not at a stage",
                    stderr_path.display(),
                    error.message
                ));
            }
        }
    }
    assert!(cases >= 29, "only {cases} fail cases found");
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// The number of mistakes a case holds: `// mistakes: N` in its source, or one.
fn declared_mistakes(source: &str) -> usize {
    source
        .lines()
        .find_map(|l| l.trim().strip_prefix("// mistakes:"))
        .map_or(1, |n| {
            let n = n.split_whitespace().next().unwrap_or_default();
            n.parse().expect("`// mistakes: N` takes a number")
        })
}

struct Reported {
    message: String,
    /// The line of the case's own file the error points at (its first `-->`), if it does.
    line: Option<usize>,
}

/// The errors of a `.stderr`, with the line of `case` each points at.
fn errors(stderr: &str, case: &Path) -> Vec<Reported> {
    let name = case.file_name().unwrap().to_str().unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    let mut errors = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if !(line.starts_with("error[") || line.starts_with("error:")) {
            continue;
        }
        let at = lines[n + 1..]
            .iter()
            .take_while(|l| !(l.starts_with("error[") || l.starts_with("error:")))
            .find_map(|l| l.trim_start().strip_prefix("--> "))
            .filter(|loc| loc.contains(name))
            .and_then(|loc| loc.rsplit(':').nth(1)?.parse().ok());
        errors.push(Reported {
            message: line.to_string(),
            line: at,
        });
    }
    errors
}
