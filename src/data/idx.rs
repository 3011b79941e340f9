//! Reader for the IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! The header is checked (magic number, dimensions, their product) before any large buffer is
//! allocated, and the payload length is checked against the header, so a truncated, padded or
//! corrupt file is reported instead of silently misread.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// The IDX magic for unsigned bytes: two zero bytes, type 0x08, then the number of dimensions.
const U8_TYPE: u8 = 0x08;
/// No IDX file we read legitimately holds more than this many bytes (about 4 GiB).
const MAX_PAYLOAD: u64 = 1 << 32;
/// Reserve at most this much up front; the rest grows as data actually arrives.
const MAX_UPFRONT: usize = 64 << 20;

/// An IDX array of unsigned bytes: its dimensions and row-major data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file from disk. Gzip is detected from the content, not the file name.
pub fn read_idx_file(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => format!("cannot read: {e}"),
        };
        Error::data(path, what)
    })?;
    parse_idx(path, &bytes)
}

/// Parses IDX bytes (raw or gzip). `path` only names the source in error messages.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        // Every member: bgzip and `cat a.gz b.gz` write several, one after the other.
        let mut decoder = MultiGzDecoder::new(bytes);
        read_idx_stream(path, &mut decoder, None, true)
    } else {
        let mut reader = bytes;
        read_idx_stream(path, &mut reader, Some(bytes.len() as u64), false)
    }
}

fn read_idx_stream(
    path: &Path,
    reader: &mut dyn Read,
    raw_len: Option<u64>,
    gzip: bool,
) -> Result<IdxArray> {
    let io_err = |e: std::io::Error| {
        if gzip {
            Error::data(path, format!("corrupt gzip data: {e}"))
        } else {
            Error::data(path, format!("cannot read: {e}"))
        }
    };
    let (short_header, short_dims) = if gzip {
        (
            "gzip data ends before the IDX header (truncated?)",
            "gzip data ends inside the IDX header (truncated?)",
        )
    } else {
        (
            "file is too short for an IDX header",
            "IDX header ends before its dimensions",
        )
    };
    let mut magic = [0u8; 4];
    read_exact_or(reader, &mut magic, path, short_header, io_err)?;
    if magic[0] != 0 || magic[1] != 0 || magic[2] != U8_TYPE || magic[3] == 0 || magic[3] > 4 {
        return Err(Error::data(
            path,
            format!(
                "not an IDX file of unsigned bytes: magic number is 0x{:02x}{:02x}{:02x}{:02x}, expected 0x000008NN (0x00000801 labels, 0x00000803 images)",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    let ndims = magic[3] as usize;
    let mut dims = Vec::with_capacity(ndims);
    for i in 0..ndims {
        let mut d = [0u8; 4];
        read_exact_or(reader, &mut d, path, short_dims, io_err)?;
        let d = u32::from_be_bytes(d) as usize;
        if d == 0 {
            return Err(Error::data(
                path,
                format!("IDX header gives dimension {i} as 0"),
            ));
        }
        dims.push(d);
    }
    let total = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&t| t <= MAX_PAYLOAD)
        .ok_or_else(|| {
            Error::data(
                path,
                format!("IDX header claims dimensions {dims:?}, which is implausibly large"),
            )
        })?;
    let header_len = 4 + 4 * ndims as u64;
    if let Some(len) = raw_len {
        let payload = len - header_len;
        if payload != total {
            return Err(length_error(path, &dims, total, payload));
        }
    }
    let mut data = Vec::with_capacity((total as usize).min(MAX_UPFRONT));
    reader.take(total).read_to_end(&mut data).map_err(io_err)?;
    if (data.len() as u64) < total {
        return Err(length_error(path, &dims, total, data.len() as u64));
    }
    // Reading on to the end makes gzip verify its checksum, and catches trailing garbage.
    let mut rest = Vec::new();
    reader
        .take(1 << 16)
        .read_to_end(&mut rest)
        .map_err(io_err)?;
    if !rest.is_empty() {
        return Err(Error::data(
            path,
            format!(
                "file has data after the {} items its header declares",
                dims[0]
            ),
        ));
    }
    Ok(IdxArray { dims, data })
}

fn length_error(path: &Path, dims: &[usize], expected: u64, got: u64) -> Error {
    let per_item = expected / dims[0] as u64;
    let what = if got < expected {
        "truncated"
    } else {
        "too long"
    };
    Error::data(
        path,
        format!(
            "{what}: header declares {} items ({expected} bytes of data) but the file holds {got} bytes ({} whole items)",
            dims[0],
            got / per_item.max(1)
        ),
    )
}

fn read_exact_or(
    reader: &mut dyn Read,
    buf: &mut [u8],
    path: &Path,
    short_message: &str,
    io_err: impl Fn(std::io::Error) -> Error,
) -> Result<()> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(Error::data(path, short_message))
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn err(bytes: &[u8]) -> String {
        parse_idx(Path::new("f.idx"), bytes)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_raw_and_gzip_alike() {
        let raw = idx(0x803, &[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse_idx(Path::new("a"), &raw).unwrap();
        let b = parse_idx(Path::new("b"), &gz(&raw)).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a, b);
        // Several gzip members (bgzip, `cat a.gz b.gz`) are one stream: all of it is read.
        let members = [gz(&raw[..9]), gz(&raw[9..20]), gz(&raw[20..])].concat();
        assert_eq!(parse_idx(Path::new("c"), &members).unwrap(), a);
    }

    #[test]
    fn rejects_wrong_magic() {
        let e = err(&idx(0x1234, &[1], &[0]));
        assert!(e.contains("magic number is 0x00001234"), "{e}");
    }

    #[test]
    fn rejects_truncated_raw_and_gzip() {
        let raw = idx(0x803, &[3, 2, 2], &[0; 10]);
        assert!(err(&raw).contains("truncated"), "{}", err(&raw));
        assert!(err(&gz(&raw)).contains("truncated"));
        let good = gz(&idx(0x801, &[4000], &[7; 4000]));
        let cut = &good[..good.len() / 2];
        let e = err(cut);
        assert!(e.contains("corrupt gzip") || e.contains("truncated"), "{e}");
        let e = err(&good[..12]);
        assert!(e.contains("gzip data ends"), "{e}");
    }

    #[test]
    fn huge_header_claim_is_rejected_without_allocating_it() {
        // 2^31 images of 28x28 claimed, a few bytes present.
        let e = err(&idx(0x803, &[1 << 31, 28, 28], &[0; 16]));
        assert!(e.contains("implausibly large"), "{e}");
        let e = err(&gz(&idx(0x803, &[1 << 22, 28, 28], &[0; 16])));
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn rejects_trailing_data_and_zero_dims() {
        assert!(err(&idx(0x801, &[2], &[1, 2, 3])).contains("too long"));
        assert!(err(&gz(&idx(0x801, &[2], &[1, 2, 3]))).contains("data after"));
        assert!(err(&idx(0x803, &[0, 28, 28], &[])).contains("dimension 0 as 0"));
        assert!(err(&[0, 0]).contains("too short"));
    }
}
