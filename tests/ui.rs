//! Compile-time behaviour of `#[task]` and `#[workflow]`: shapes that must compile
//! (`tests/ui/pass`) and mistakes that must fail with the intended error
//! (`tests/ui/fail`). See `tests/ui/README.md`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
