//! The README shows code that CI compiles: its "Getting started" application is
//! `examples/getting_started.rs`, and its "Testing your workflows" tests are
//! `tests/test_kit_readme.rs`, verbatim.

const README: &str = include_str!("../README.md");

/// The first ```` ```rust ```` block of the README section headed `heading`.
fn rust_block_of(heading: &str) -> &'static str {
    README
        .split(heading)
        .nth(1)
        .and_then(|section| section.split("```rust\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .unwrap_or_else(|| panic!("the README's section {heading:?} shows code in a rust block"))
}

/// A source file as the README shows it: without its `//!` header.
fn shown(source: &str) -> String {
    let code: Vec<&str> = source
        .lines()
        .filter(|line| !line.starts_with("//!"))
        .skip_while(|line| line.is_empty())
        .collect();
    code.join("\n")
}

#[test]
fn the_getting_started_application_is_the_example_ci_builds() {
    assert_eq!(
        rust_block_of("## Getting started"),
        shown(include_str!("../examples/getting_started.rs")),
        "README and examples/getting_started.rs differ"
    );
}

#[test]
fn the_testing_example_is_the_test_file_ci_runs() {
    assert_eq!(
        rust_block_of("## Testing your workflows"),
        shown(include_str!("../tests/test_kit_readme.rs")),
        "README and tests/test_kit_readme.rs differ"
    );
}
