// Network I/O in an orchestration body would repeat on replay: move it into a plain `#[task]`.
use hitl::prelude::*;

#[workflow]
async fn release() -> bool {
    std::net::TcpStream::connect("127.0.0.1:80").is_ok()
}

fn main() {}
