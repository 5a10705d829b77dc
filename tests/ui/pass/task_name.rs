// `#[task(name = "…")]` names the step; it combines with the other arguments.
use hitl::prelude::*;

#[task(name = "build-plan")]
async fn build_plan(service: String) -> String {
    service
}

#[task(name = "build-image", retries = 1)]
async fn build_image(service: String) -> Result<String, std::io::Error> {
    Ok(service)
}

fn main() {
    let _ = (build_plan("api".to_owned()), build_image("api".to_owned()));
}
