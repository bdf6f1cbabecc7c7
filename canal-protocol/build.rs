//! Generates Rust types for the two Canal `.proto` files.
//!
//! `protox` compiles the files in-process, so no `protoc` binary is needed.
//! Both files declare the same protobuf package, and both define an enum value
//! named `HEARTBEAT` at package scope, so they are compiled as two separate
//! descriptor sets into two separate output directories (Canal also compiles
//! them independently).

use std::{env, error::Error, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    for (file, module) in [
        ("CanalProtocol.proto", "packet"),
        ("EntryProtocol.proto", "entry"),
    ] {
        println!("cargo:rerun-if-changed=proto/{file}");
        let descriptors = protox::compile([file], ["proto"])?;
        let dir = out_dir.join(module);
        fs::create_dir_all(&dir)?;
        prost_build::Config::new()
            .out_dir(&dir)
            // `bytes` fields become `bytes::Bytes`, so decoding from a frame
            // slices the frame instead of copying.
            .bytes(["."])
            .compile_fds(descriptors)?;
    }
    Ok(())
}
