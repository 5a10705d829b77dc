//! The README shows code that CI compiles: its "Getting started" application is
//! `examples/getting_started.rs`, verbatim.

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
