//! Compile-time checks: each case under `tests/ui/fail` is a mistake a user can make, named after
//! it, with the message rustc shows in its `.stderr`. Cases under `tests/ui/pass` must build.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui`, then read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
