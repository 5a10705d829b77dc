// A sync `#[task]` compiles and is called like the fn it was.
use hitl::prelude::*;

#[task]
fn rollout_message(image: String, replicas: u32) -> String {
    format!("{image} on {replicas} replicas")
}

fn main() {
    assert_eq!(rollout_message("api:v1".to_owned(), 2), "api:v1 on 2 replicas");
}
