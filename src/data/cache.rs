//! The decoded cache of a folder of pictures: the pixels of every split in one file, so that a
//! second start reads bytes instead of decoding tens of thousands of pictures again.
//!
//! Where: `DIR/.cnn-tui-cache/` when the data folder is writable, else
//! `$XDG_CACHE_HOME/cnn-tui/` (or `~/.cache/cnn-tui/`). One file per `image_size` and
//! `channels` setting.
//!
//! Format (little-endian): magic, format version, the key (its length, then its bytes), the
//! stored shape, the left-out file names, the split sizes, then each split's labels and pixels,
//! and last a checksum of those. The key holds the format version, the settings and every
//! file's path, split, class, size and modification time, and is compared byte for byte: a
//! changed, added or removed file, other settings or another version mean decoding again. A
//! file whose length is not exactly what its header implies (torn by a kill) or whose checksum
//! differs is rebuilt, never trusted. Files are written under a temporary name and renamed.

use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::Split;
use super::decode::Target;
use super::folder::{Entry, Listing};
use crate::error::{Error, Result};

/// The cache's folder inside a data folder (hidden, so listings never take it for a class).
pub(crate) const FOLDER: &str = ".cnn-tui-cache";
const MAGIC: &[u8; 16] = b"cnn-tui pixels\n\0";
/// Bump when the layout of the file or the decoding (filter, conversions) changes.
const VERSION: u32 = 1;
/// A cache header (key and names) larger than this is not one of ours.
const MAX_HEADER: u64 = 1 << 30;

/// What a cache holds: the decoded splits, in the listing's order.
pub(crate) struct Cached {
    pub(crate) splits: Vec<Split>,
    pub(crate) shape: [usize; 3],
    pub(crate) bad: Vec<PathBuf>,
}

/// The bytes a cache must match: settings and the full file list with sizes and times.
pub(crate) fn key(listing: &Listing, target: &Target) -> Vec<u8> {
    let mut k = Vec::new();
    k.extend_from_slice(&VERSION.to_le_bytes());
    let [h, w] = target.size.unwrap_or([0, 0]);
    for v in [h, w, target.channels.unwrap_or(0), target.skip_bad as usize] {
        k.extend_from_slice(&(v as u64).to_le_bytes());
    }
    for name in &listing.classes {
        put_bytes(&mut k, name.as_bytes());
    }
    for (tag, list) in lists(listing).iter().enumerate() {
        k.extend_from_slice(&(tag as u64).to_le_bytes());
        k.extend_from_slice(&(list.len() as u64).to_le_bytes());
        for e in *list {
            k.push(e.label);
            k.extend_from_slice(&e.size.to_le_bytes());
            k.extend_from_slice(&e.mtime_ns.to_le_bytes());
            put_bytes(&mut k, e.path.as_os_str().as_encoded_bytes());
        }
    }
    k
}

/// The listing's file lists in storage order: train, then validation when present, then test.
pub(crate) fn lists(listing: &Listing) -> Vec<&[Entry]> {
    let mut v: Vec<&[Entry]> = vec![&listing.train];
    if let Some(val) = &listing.validation {
        v.push(val);
    }
    v.push(&listing.test);
    v
}

/// Where the cache for `dir` with these settings may live, most preferred first.
pub(crate) fn places(dir: &Path, target: &Target) -> Vec<PathBuf> {
    let name = format!(
        "pixels-{}-{}{}.bin",
        target
            .size
            .map_or("native".to_string(), |[h, w]| format!("{h}x{w}")),
        target
            .channels
            .map_or("auto".to_string(), |c| format!("c{c}")),
        if target.skip_bad { "-skipbad" } else { "" }
    );
    let mut places = vec![dir.join(FOLDER).join(&name)];
    let user = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(user) = user {
        let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut digest = Checksum::default();
        digest.add(absolute.as_os_str().as_encoded_bytes());
        places.push(
            user.join("cnn-tui")
                .join(format!("{:016x}-{name}", digest.finish())),
        );
    }
    places
}

/// Reads the first place whose cache matches `key` exactly. `Err` carries why a cache that
/// exists was not used (for the log); `Ok(None)` means none exists.
pub(crate) fn read(
    places: &[PathBuf],
    key: &[u8],
) -> std::result::Result<Option<(Cached, PathBuf)>, String> {
    let mut why = None;
    for path in places {
        match read_one(path, key) {
            Ok(Some(c)) => return Ok(Some((c, path.clone()))),
            Ok(None) => {}
            Err(e) => {
                why.get_or_insert(format!("{}: {e}", path.display()));
            }
        }
    }
    match why {
        Some(w) => Err(w),
        None => Ok(None),
    }
}

fn read_one(path: &Path, key: &[u8]) -> std::result::Result<Option<Cached>, String> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let file_len = meta.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 16];
    read_exact(&mut r, &mut magic)?;
    if &magic != MAGIC {
        return Err("not a cnn-tui pixel cache".into());
    }
    let version = u32::from_le_bytes(read_array(&mut r)?);
    if version != VERSION {
        return Err(format!(
            "written by cache format {version}, this is {VERSION}"
        ));
    }
    let stored_key = read_sized(&mut r, file_len)?;
    if stored_key != key {
        return Err("the pictures or settings changed".into());
    }
    let mut shape = [0usize; 3];
    for s in &mut shape {
        *s = read_u64(&mut r)? as usize;
    }
    let bad_count = read_u64(&mut r)?;
    if bad_count > file_len {
        return Err("torn or corrupt (bad count)".into());
    }
    let mut bad = Vec::new();
    let mut header_len = 16 + 4 + 8 + key.len() as u64 + 24 + 8;
    for _ in 0..bad_count {
        let name = read_sized(&mut r, file_len)?;
        header_len += 8 + name.len() as u64;
        bad.push(PathBuf::from(String::from_utf8_lossy(&name).into_owned()));
    }
    let split_count = read_u64(&mut r)?;
    if split_count > 3 {
        return Err("torn or corrupt (split count)".into());
    }
    let sample_len = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&n| n > 0 && n <= 1 << 24)
        .ok_or("torn or corrupt (shape)")?;
    let mut counts = Vec::new();
    let mut expected = header_len + 8 + 8 * split_count + 8;
    for _ in 0..split_count {
        let n = read_u64(&mut r)?;
        let bytes = n
            .checked_mul(sample_len + 1)
            .ok_or("torn or corrupt (split size)")?;
        expected = expected
            .checked_add(bytes)
            .ok_or("torn or corrupt (split size)")?;
        counts.push(n as usize);
    }
    if expected != file_len {
        return Err(format!(
            "torn or corrupt: {file_len} bytes where its header implies {expected}"
        ));
    }
    let mut sum = Checksum::default();
    let mut splits = Vec::new();
    for n in counts {
        let mut labels = vec![0u8; n];
        read_exact(&mut r, &mut labels)?;
        let mut images = vec![0u8; n * sample_len as usize];
        read_exact(&mut r, &mut images)?;
        sum.add(&labels);
        sum.add(&images);
        splits.push(Split { images, labels });
    }
    if u64::from_le_bytes(read_array(&mut r)?) != sum.finish() {
        return Err("corrupt: checksum differs".into());
    }
    Ok(Some(Cached { splits, shape, bad }))
}

/// Writes the cache to the first place that takes it; returns that place, or why none did.
pub(crate) fn write(
    places: &[PathBuf],
    key: &[u8],
    cached: &Cached,
) -> std::result::Result<PathBuf, String> {
    let mut last = String::from("no place to write");
    for path in places {
        match write_one(path, key, cached) {
            Ok(()) => return Ok(path.clone()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

fn write_one(path: &Path, key: &[u8], c: &Cached) -> Result<()> {
    let dir = path.parent().expect("cache paths have a folder");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "cannot create cache folder", e))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name().expect("named").to_string_lossy()
    ));
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        put_sized(&mut w, key)?;
        for s in c.shape {
            w.write_all(&(s as u64).to_le_bytes())?;
        }
        w.write_all(&(c.bad.len() as u64).to_le_bytes())?;
        for b in &c.bad {
            put_sized(&mut w, b.to_string_lossy().as_bytes())?;
        }
        w.write_all(&(c.splits.len() as u64).to_le_bytes())?;
        for s in &c.splits {
            w.write_all(&(s.len() as u64).to_le_bytes())?;
        }
        let mut sum = Checksum::default();
        for s in &c.splits {
            w.write_all(&s.labels)?;
            w.write_all(&s.images)?;
            sum.add(&s.labels);
            sum.add(&s.images);
        }
        w.write_all(&sum.finish().to_le_bytes())?;
        w.flush()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, "cannot write pixel cache", e));
    }
    Ok(())
}

fn put_bytes(k: &mut Vec<u8>, bytes: &[u8]) {
    k.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    k.extend_from_slice(bytes);
}

fn put_sized(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(&(bytes.len() as u64).to_le_bytes())?;
    w.write_all(bytes)
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> std::result::Result<(), String> {
    r.read_exact(buf)
        .map_err(|_| "torn: the file ends early".to_string())
}

fn read_array<const N: usize>(r: &mut impl Read) -> std::result::Result<[u8; N], String> {
    let mut a = [0u8; N];
    read_exact(r, &mut a)?;
    Ok(a)
}

fn read_u64(r: &mut impl Read) -> std::result::Result<u64, String> {
    Ok(u64::from_le_bytes(read_array(r)?))
}

/// A length-prefixed byte string, its length checked against the file's before allocating.
fn read_sized(r: &mut impl Read, file_len: u64) -> std::result::Result<Vec<u8>, String> {
    let n = read_u64(r)?;
    if n > file_len || n > MAX_HEADER {
        return Err("torn or corrupt (length past the end)".into());
    }
    let mut v = vec![0u8; n as usize];
    read_exact(r, &mut v)?;
    Ok(v)
}

/// A fast 64-bit checksum (multiply-xor over 8-byte words); it catches torn and flipped
/// bytes, it is not meant to resist forgery (the key is compared in full).
#[derive(Default)]
struct Checksum {
    h: u64,
    len: u64,
}

impl Checksum {
    fn add(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        let mut h = self.h;
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        self.h = h;
        self.len += bytes.len() as u64;
    }

    fn finish(&self) -> u64 {
        (self.h ^ self.len).wrapping_mul(0xFF51_AFD7_ED55_8CCD)
    }
}
