//! Helpers: run the real binary, build small IDX files.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

pub fn cnn_tui(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnn-tui"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run cnn-tui")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An IDX file's bytes: magic, big-endian dimensions, data.
pub fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes a tiny valid MNIST-layout dataset (n train, n test images of 8x8) into `dir`.
pub fn write_tiny_dataset(dir: &Path, n: u32) {
    let images: Vec<u8> = (0..n * 64).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (name, bytes) in [
        (
            "train-images-idx3-ubyte.gz",
            gzip(&idx(0x803, &[n, 8, 8], &images)),
        ),
        (
            "train-labels-idx1-ubyte.gz",
            gzip(&idx(0x801, &[n], &labels)),
        ),
        ("t10k-images-idx3-ubyte", idx(0x803, &[n, 8, 8], &images)),
        ("t10k-labels-idx1-ubyte", idx(0x801, &[n], &labels)),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
