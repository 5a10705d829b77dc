//! The README shows code that CI compiles: its "Getting started" application is
//! `examples/getting_started.rs`, and its "Testing your workflows" tests are
//! `tests/test_kit_readme.rs`, verbatim.

#[test]
fn the_getting_started_application_is_the_example_ci_builds() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/getting_started.rs");
    let section = readme
        .split("## Getting started")
        .nth(1)
        .expect("the README has a Getting started section");
    let shown = section
        .split("```rust\n")
        .nth(1)
        .and_then(|block| block.split("\n```").next())
        .expect("the section shows the application in a rust block");
    let code: Vec<&str> = example
        .lines()
        .filter(|line| !line.starts_with("//!"))
        .skip_while(|line| line.is_empty())
        .collect();
    assert_eq!(
        shown,
        code.join("\n"),
        "README and examples/getting_started.rs differ"
    );
}

#[test]
fn the_testing_example_is_the_test_file_ci_runs() {
    let readme = include_str!("../README.md");
    let tests = include_str!("../tests/test_kit_readme.rs");
    let shown = readme
        .split("## Testing your workflows")
        .nth(1)
        .and_then(|section| section.split("```rust\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .expect("the README's testing section shows its tests in a rust block");
    let code: Vec<&str> = tests
        .lines()
        .filter(|line| !line.starts_with("//!"))
        .skip_while(|line| line.is_empty())
        .collect();
    assert_eq!(
        shown,
        code.join("\n"),
        "README and tests/test_kit_readme.rs differ"
    );
}
