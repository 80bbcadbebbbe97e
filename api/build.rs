//! Compiles the gRPC contract with the vendored `protoc` and emits the descriptor set used by
//! server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts are single-threaded; prost-build reads PROTOC from the environment.
    std::env::set_var("PROTOC", protoc);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/suanpan/v1/ledger.proto",
        "proto/suanpan/v1/admin.proto",
        "proto/suanpan/v1/peer.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("suanpan_v1_descriptor.bin"))
        // Deterministic encoding (clients sign the exact bytes they send).
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
