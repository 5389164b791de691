//! Generates the prost messages and tonic client/server for `proto/` with protox (a pure-Rust
//! protobuf compiler, so no `protoc` binary is needed), and writes the encoded file descriptor
//! set that server reflection serves.
//!
//! The options here must match `buf.gen.yaml` (protoc-gen-prost / protoc-gen-tonic); the
//! `codegen` check in `scripts/check-codegen.sh` proves both paths generate the same code.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = root.join("connector/v1/connector.proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let fds = protox::compile([&proto], [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("connector_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        // These requests carry a bot token: their Debug is written by hand, redacted.
        .skip_debug([
            "connector.v1.CreateConnectorRequest",
            "connector.v1.UpdateConnectorRequest",
        ])
        .compile_fds(fds)?;
    Ok(())
}
