//! Generates the gRPC client and server of both KMS plugin APIs from `proto/`.
//!
//! protox parses the .proto files in pure Rust, so building needs no `protoc`.

use std::error::Error;

const PROTOS: [&str; 2] = ["proto/v1beta1/api.proto", "proto/v2/api.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
