//! Reading a file that another process appends to (`metrics.jsonl`), a poll at a time: only
//! the bytes appended since the last read, only complete lines (a line being written, or left
//! torn by a killed writer, waits or is skipped), and a fresh start when the file was replaced.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Longest line kept waiting for its end; longer is not a metrics line and is dropped.
const MAX_LINE: usize = 1 << 20;

pub struct Tail {
    path: PathBuf,
    offset: u64,
    inode: Option<u64>,
    partial: Vec<u8>,
}

/// What a poll found.
#[derive(Debug, Default, PartialEq)]
pub struct Appended {
    /// The file was replaced or truncated: the lines start over from its beginning.
    pub restarted: bool,
    pub lines: Vec<Value>,
}

impl Tail {
    pub fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            offset: 0,
            inode: None,
            partial: Vec::new(),
        }
    }

    /// The complete JSON lines appended since the last poll. A missing file (not yet
    /// created, or deleted) yields nothing; lines that are not JSON objects are skipped.
    pub fn poll(&mut self) -> Appended {
        let mut out = Appended::default();
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return out;
        };
        let Ok(meta) = file.metadata() else {
            return out;
        };
        if self.inode.is_some_and(|i| i != meta.ino()) || meta.len() < self.offset {
            out.restarted = true;
            self.offset = 0;
            self.partial.clear();
        }
        self.inode = Some(meta.ino());
        if meta.len() == self.offset {
            return out;
        }
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err()
            || file
                .take(meta.len() - self.offset)
                .read_to_end(&mut bytes)
                .is_err()
        {
            return out;
        }
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let complete = match self.partial.iter().rposition(|&b| b == b'\n') {
            Some(end) => self.partial.drain(..=end).collect::<Vec<u8>>(),
            None => {
                if self.partial.len() > MAX_LINE {
                    self.partial.clear();
                }
                return out;
            }
        };
        out.lines = complete
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .filter(Value::is_object)
            .collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_only_complete_appended_lines_and_restarts_on_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut tail = Tail::new(&path);
        assert_eq!(tail.poll(), Appended::default(), "no file yet");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "{{\"step\":1}}\n{{\"step\":2").unwrap();
        let got = tail.poll();
        assert_eq!(got.lines, vec![serde_json::json!({"step": 1})]);
        writeln!(f, "}}\ngarbage\n[1]").unwrap();
        assert_eq!(tail.poll().lines, vec![serde_json::json!({"step": 2})]);
        assert!(tail.poll().lines.is_empty(), "nothing new");
        // Replaced (a resume rewrites it atomically): start over.
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, "{\"step\":1}\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let got = tail.poll();
        assert!(got.restarted);
        assert_eq!(got.lines.len(), 1);
        // Deleted: nothing, no error.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(tail.poll(), Appended::default());
    }
}
