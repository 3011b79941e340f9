//! File operations that treat a run directory as written by someone else: no symbolic link is
//! followed, only regular files are read (checked on the opened handle, so a FIFO or a device
//! never blocks or floods a reader), sizes are capped, and files are replaced through
//! temporary files created exclusively under unpredictable names, relative to an open
//! directory handle.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result};

/// An open directory: files in it are opened relative to the handle, so that a directory
/// renamed or replaced by a symbolic link after it was opened is not followed.
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// `O_NOFOLLOW` opens of a symbolic link fail with `ELOOP`; said so in plain words.
fn no_follow_error(e: rustix::io::Errno, what: &str) -> io::Error {
    if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} is a symbolic link or not a {what}: refused"),
        )
    } else {
        io::Error::from(e)
    }
}

impl Dir {
    /// Opens a directory; the last component must not be a symbolic link.
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| no_follow_error(e, "directory"))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens a directory given by a person (links in its path are theirs to choose).
    pub(crate) fn open_following(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the sub-directory `name` (a bare name), never through a symbolic link.
    pub(crate) fn open_dir(&self, name: &str) -> io::Result<Dir> {
        let fd = rustix::fs::openat(
            &self.fd,
            bare(name)?,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| no_follow_error(e, "directory"))?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Makes the sub-directory `name` owner-only (0700) when it does not exist, in one step;
    /// an existing one must be a real directory owned by this user. Returns it opened.
    pub(crate) fn make_dir(&self, name: &str) -> io::Result<Dir> {
        match rustix::fs::mkdirat(&self.fd, bare(name)?, Mode::RWXU) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let dir = self.open_dir(name)?;
        dir.check_owned()?;
        Ok(dir)
    }

    /// The same directory, by a second descriptor (it stays the one opened, whatever is later
    /// renamed or put in its place).
    pub(crate) fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Refuses a directory not owned by this user.
    pub(crate) fn check_owned(&self) -> io::Result<()> {
        let st = rustix::fs::fstat(&self.fd)?;
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "permission denied: owned by uid {}, not by you (uid {me})",
                    st.st_uid
                ),
            ));
        }
        Ok(())
    }

    /// The permission bits and owner of the directory itself.
    pub(crate) fn mode_and_owner(&self) -> io::Result<(u32, u32)> {
        let st = rustix::fs::fstat(&self.fd)?;
        Ok((st.st_mode & 0o7777, st.st_uid))
    }

    /// Opens `name` for reading: a regular file (not a link, FIFO or device) of at most
    /// `max` bytes.
    pub(crate) fn open_read(&self, name: &str, max: u64) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            bare(name)?,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| no_follow_error(e, "file"))?;
        regular_within(fd, max)
    }

    /// The whole of `name`, a regular file of at most `max` bytes.
    pub(crate) fn read(&self, name: &str, max: u64) -> io::Result<Vec<u8>> {
        read_capped(self.open_read(name, max)?, max)
    }

    /// Opens `name` for writing, created owner-only when missing, appended to or truncated;
    /// an existing file must be a regular file owned by this user.
    pub(crate) fn open_write(&self, name: &str, append: bool) -> io::Result<File> {
        self.open_writable(
            name,
            if append {
                OFlags::APPEND
            } else {
                OFlags::TRUNC
            },
        )
    }

    /// Like [`Dir::open_write`], keeping what the file holds (for a lock file).
    pub(crate) fn open_write_keep(&self, name: &str) -> io::Result<File> {
        self.open_writable(name, OFlags::empty())
    }

    fn open_writable(&self, name: &str, mode: OFlags) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            bare(name)?,
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | mode,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| no_follow_error(e, "file"))?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(not_regular());
        }
        if st.st_uid != rustix::process::geteuid().as_raw() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "permission denied: the file belongs to another user",
            ));
        }
        Ok(File::from(fd))
    }

    /// Replaces `name` with `bytes` so that readers see the old or the new file, never a
    /// part: a temporary file created exclusively under an unpredictable name, renamed over
    /// it. With `sync`, a crash at any moment leaves the old or the new file too (the file
    /// and the directory are synced). The temporary file is removed when anything fails.
    pub(crate) fn replace(&self, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
        self.replace_with(name, sync, |f| f.write_all(bytes))
    }

    /// Like [`Dir::replace`], the new contents written by `write`.
    pub(crate) fn replace_with(
        &self,
        name: &str,
        sync: bool,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        let name = bare(name)?;
        let (tmp, mut file) = self.create_temporary(name)?;
        let result = (|| {
            write(&mut file)?;
            if sync {
                file.sync_all()?;
            }
            rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)?;
            if sync {
                rustix::fs::fsync(&self.fd)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// `.NAME.tmp-RANDOM`, created with `O_EXCL` (a planted file or link of that name makes
    /// it fail, never followed).
    fn create_temporary(&self, name: &str) -> io::Result<(String, File)> {
        let mut last = None;
        for _ in 0..8 {
            let tmp = format!(".{name}{TEMPORARY}{:016x}", rand::random::<u64>());
            match rustix::fs::openat(
                &self.fd,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::RUSR | Mode::WUSR,
            ) {
                Ok(fd) => return Ok((tmp, File::from(fd))),
                Err(e) if e == rustix::io::Errno::EXIST => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.expect("tried").into())
    }

    /// Removes `name` (a file, never what a link points to).
    pub(crate) fn remove(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, bare(name)?, AtFlags::empty()).map_err(Into::into)
    }

    /// The type, owner and size of `name` itself (a link is reported as a link).
    pub(crate) fn stat(&self, name: &str) -> io::Result<(FileType, u32, u64)> {
        let st = rustix::fs::statat(&self.fd, bare(name)?, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok((
            FileType::from_raw_mode(st.st_mode),
            st.st_uid,
            st.st_size as u64,
        ))
    }

    /// The names in the directory (`.` and `..` left out), sorted.
    pub(crate) fn names(&self) -> io::Result<Vec<String>> {
        let fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(fd.as_fd())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes temporary files (`.*.tmp-*`, regular files of this user) that a killed writer
    /// left behind.
    pub(crate) fn remove_temporaries(&self) {
        let me = rustix::process::geteuid().as_raw();
        for name in self.names().unwrap_or_default() {
            if is_temporary(&name)
                && self
                    .stat(&name)
                    .is_ok_and(|(t, uid, _)| t == FileType::RegularFile && uid == me)
            {
                let _ = self.remove(&name);
            }
        }
    }
}

/// Whether `name` is one of the temporary files that atomic replacement leaves behind when
/// it is killed half-way.
pub(crate) fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMPORARY)
}

/// What temporary file names contain.
const TEMPORARY: &str = ".tmp-";

/// A name inside a directory: no separators, not `.` or `..`.
fn bare(name: &str) -> io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a plain file name", escape(name)),
        ));
    }
    Ok(name)
}

fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file (a FIFO, device or directory): refused",
    )
}

/// The opened file when it is a regular file of at most `max` bytes.
fn regular_within(fd: OwnedFd, max: u64) -> io::Result<File> {
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(not_regular());
    }
    if st.st_size as u64 > max {
        return Err(too_big(max));
    }
    // Reads of a regular file never block; the flag only mattered for opening a FIFO.
    rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
    Ok(File::from(fd))
}

fn too_big(max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {max} bytes: refused"),
    )
}

/// Reads at most `max` bytes; a file that grew past `max` meanwhile is refused.
fn read_capped(file: File, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_big(max));
    }
    Ok(bytes)
}

/// The parent directory of `path` (followed: the path is a person's choice) and its file name
/// (never followed).
fn split(path: &Path) -> io::Result<(Dir, String)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    Ok((Dir::open_following(dir)?, name.to_string()))
}

/// Opens `path` for reading: a regular file (not a link, FIFO or device) of at most `max`
/// bytes.
pub(crate) fn open_read(path: &Path, max: u64) -> io::Result<File> {
    let (dir, name) = split(path)?;
    dir.open_read(&name, max)
}

/// The whole of `path`, a regular file of at most `max` bytes.
pub(crate) fn read(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (dir, name) = split(path)?;
    dir.read(&name, max)
}

/// The whole of a file a person named (a config, say): links followed, as they are the
/// person's choice, but only a regular file of at most `max` bytes is read, so that a FIFO
/// or a device given by mistake is refused instead of hanging or filling the memory.
pub(crate) fn read_named_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    read_capped(regular_within(fd, max)?, max)
}

/// Replaces `path` with `bytes` so that a crash at any moment leaves the old or the new file:
/// a temporary file in the same directory, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    split(path)
        .and_then(|(dir, name)| dir.replace(&name, bytes, true))
        .map_err(|e| Error::io(path, "cannot write", e))
}

/// Text from a run directory made safe to print: control characters (escape sequences,
/// carriage returns, newlines) are shown escaped, as `\u{1b}`.
pub(crate) fn escape(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_fifos_devices_and_big_files_are_refused_when_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("real"), b"hello").unwrap();
        assert_eq!(dir.read("real", 10).unwrap(), b"hello");
        assert!(
            dir.read("real", 4)
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
        symlink(tmp.path().join("real"), tmp.path().join("link")).unwrap();
        assert!(
            dir.read("link", 10)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        symlink("/dev/zero", tmp.path().join("zero")).unwrap();
        assert!(dir.read("zero", 10).is_err());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("fifo"),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        let e = dir.read("fifo", 10).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read(Path::new("/dev/zero"), 10).is_err());
        assert!(dir.read("../real", 10).is_err());
    }

    #[test]
    fn replacing_never_follows_a_planted_link_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        symlink(&victim, tmp.path().join("file")).unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        dir.replace("file", b"new", true).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(tmp.path().join("file")).unwrap(), b"new");
        assert!(dir.open_write("victim-link", true).is_ok());
        symlink(&victim, tmp.path().join("log")).unwrap();
        assert!(dir.open_write("log", true).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(
            dir.names().unwrap(),
            ["file", "log", "victim", "victim-link"]
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\u{1b}[2Jb\r\n"), "a\\u{1b}[2Jb\\r\\n");
    }
}
