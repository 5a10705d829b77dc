// `#[task(retries = n)]` on an async fallible task with `Clone` arguments compiles.
use hitl::prelude::*;

#[task(retries = 2)]
async fn build_image(service: String) -> Result<String, std::io::Error> {
    Ok(format!("{service}:v1"))
}

fn main() {
    let _ = build_image("api".to_owned());
}
