//! File parts: sizing them from metadata when the body is built, and reading them with
//! positioned reads while it streams, checking that they still are what was measured.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, FileKind, Result};

/// Which file a path named when it was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

/// What is needed of a file's metadata, from `std` or from `statat(2)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileStat {
    kind: Option<FileKind>,
    len: u64,
    identity: Identity,
}

impl FileStat {
    fn of(meta: &Metadata) -> FileStat {
        FileStat {
            kind: kind_name(meta.mode()),
            len: meta.len(),
            identity: Identity {
                dev: meta.dev(),
                ino: meta.ino(),
            },
        }
    }

    // The `stat` field types vary by target (`st_mode` is 16 bits on macOS, 32 on Linux).
    #[allow(
        clippy::unnecessary_cast,
        clippy::useless_conversion,
        clippy::cast_lossless
    )]
    fn of_raw(stat: &rustix::fs::Stat) -> FileStat {
        let mode = stat.st_mode as u32;
        FileStat {
            kind: kind_name(mode),
            len: stat.st_size as u64,
            identity: Identity {
                dev: stat.st_dev as u64,
                ino: stat.st_ino as u64,
            },
        }
    }
}

fn kind_name(mode: u32) -> Option<FileKind> {
    // `mode_t` is 16 bits on macOS, 32 on Linux: the file-type bits fit in either.
    match rustix::fs::FileType::from_raw_mode(mode as rustix::fs::RawMode) {
        rustix::fs::FileType::RegularFile => None,
        rustix::fs::FileType::Directory => Some(FileKind::Directory),
        rustix::fs::FileType::Fifo => Some(FileKind::Fifo),
        rustix::fs::FileType::Socket => Some(FileKind::Socket),
        rustix::fs::FileType::CharacterDevice => Some(FileKind::CharacterDevice),
        rustix::fs::FileType::BlockDevice => Some(FileKind::BlockDevice),
        _ => Some(FileKind::Other),
    }
}

/// Measures many paths cheaply: files of the directory measured last are looked up relative to
/// it (`statat(2)` and `openat(2)` walk one component instead of the whole path; sizing 10,000
/// files costs mostly path walks).
#[derive(Debug, Default)]
pub(crate) struct Measurer {
    dir: Option<(PathBuf, rustix::fd::OwnedFd)>,
}

impl Measurer {
    /// Follows symlinks, like `fs::metadata`.
    fn stat(&mut self, path: &Path) -> io::Result<FileStat> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return fs::metadata(path).map(|m| FileStat::of(&m));
        };
        if parent.as_os_str().is_empty() {
            return fs::metadata(path).map(|m| FileStat::of(&m));
        }
        if self.dir.as_ref().is_none_or(|(dir, _)| dir != parent) {
            let Ok(fd) = crate::sys::open_dir_for_lookups(parent) else {
                self.dir = None;
                return fs::metadata(path).map(|m| FileStat::of(&m));
            };
            self.dir = Some((parent.to_path_buf(), fd));
        }
        let (_, dir) = self.dir.as_ref().expect("set above");
        rustix::fs::statat(dir, name, rustix::fs::AtFlags::empty())
            .map(|st| FileStat::of_raw(&st))
            .map_err(io::Error::from)
    }

    /// Asks the kernel whether this process may read the regular file at `path`: opens it for
    /// reading and closes it at once. Only `open(2)` hears every party to the answer: mode bits,
    /// ACLs, capabilities (root without `CAP_DAC_OVERRIDE`), security modules, and an NFS
    /// server squashing root. `access(2)` checks the real uid with the permitted capabilities,
    /// and the mode bits alone miss the rest, so both let a file pass here that then fails
    /// mid-upload. Call it after `stat` has found a regular file: opening a device or a FIFO
    /// has side effects (a watchdog arms, a serial line resets, a blocked writer wakes up).
    fn check_readable(&self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            use rustix::fs::{Mode, OFlags};
            // NONBLOCK: a file swapped for a FIFO since `stat` must not hang the caller.
            let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
            let opened = match (&self.dir, path.parent(), path.file_name()) {
                (Some((dir, fd)), Some(parent), Some(name)) if dir == parent => {
                    rustix::fs::openat(fd, name, flags, Mode::empty())
                }
                _ => rustix::fs::open(path, flags, Mode::empty()),
            };
            opened.map(drop).map_err(io::Error::from)
        }
        #[cfg(not(unix))]
        {
            File::open(path).map(drop)
        }
    }
}

/// A file part's data: where it is and how long it was when the body was built.
#[derive(Debug)]
pub(crate) struct FileData {
    pub(crate) part: String,
    pub(crate) path: Option<PathBuf>,
    /// An open file handed in by the caller (`None` for paths, opened when streamed).
    pub(crate) given: Option<Arc<File>>,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// Whether the data runs to the end of the file (then a grown file is an error); a slice
    /// of a file may have more bytes after it.
    to_end: bool,
    identity: Option<Identity>,
}

fn io_error(part: &str, path: Option<&Path>, source: io::Error) -> Error {
    Error::Io {
        path: path.map(Path::to_path_buf),
        part: part.to_owned(),
        source,
    }
}

impl FileData {
    /// Measures a file by path: follows symlinks, requires a regular file the process may open
    /// for reading, and reads nothing.
    pub(crate) fn from_path(
        part: &str,
        path: PathBuf,
        measurer: &mut Measurer,
    ) -> Result<FileData> {
        let stat = measurer
            .stat(&path)
            .map_err(|e| io_error(part, Some(&path), e))?;
        if let Some(kind) = stat.kind {
            return Err(Error::NotARegularFile { path, kind });
        }
        measurer
            .check_readable(&path)
            .map_err(|e| io_error(part, Some(&path), e))?;
        Ok(FileData {
            part: part.to_owned(),
            path: Some(path),
            given: None,
            offset: 0,
            len: stat.len,
            to_end: true,
            identity: Some(stat.identity),
        })
    }

    /// Measures an open file: `len` bytes from `offset`, or the rest of the file.
    pub(crate) fn from_file(
        part: &str,
        file: Arc<File>,
        offset: u64,
        len: Option<u64>,
    ) -> Result<FileData> {
        let meta = file.metadata().map_err(|e| io_error(part, None, e))?;
        if let Some(kind) = kind_name(meta.mode()) {
            return Err(Error::Io {
                path: None,
                part: part.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the open file is {kind}; stream it as a reader of unknown size"),
                ),
            });
        }
        let available = meta.len().saturating_sub(offset);
        let len = len.unwrap_or(available);
        if len > available {
            return Err(Error::SizeChanged {
                part: part.to_owned(),
                path: None,
                expected: len,
                actual: available,
            });
        }
        Ok(FileData {
            part: part.to_owned(),
            path: None,
            given: Some(file),
            offset,
            len,
            to_end: len == available,
            identity: None,
        })
    }

    pub(crate) fn io_error(&self, source: io::Error) -> Error {
        io_error(&self.part, self.path.as_deref(), source)
    }

    pub(crate) fn size_changed(&self, actual: u64) -> Error {
        Error::SizeChanged {
            part: self.part.clone(),
            path: self.path.clone(),
            expected: self.len,
            actual,
        }
    }

    /// Opens the file for streaming and checks it is the one that was measured, at the size
    /// that was measured.
    pub(crate) fn open(&self) -> Result<Arc<File>> {
        let file = match (&self.given, &self.path) {
            (Some(file), _) => Arc::clone(file),
            (None, Some(path)) => {
                Arc::new(File::open(path).map_err(|e| io_error(&self.part, Some(path), e))?)
            }
            (None, None) => unreachable!("a file part has a path or a file"),
        };
        let meta = file
            .metadata()
            .map_err(|e| io_error(&self.part, self.path.as_deref(), e))?;
        if let (Some(identity), Some(path)) = (self.identity, &self.path)
            && FileStat::of(&meta).identity != identity
        {
            return Err(Error::FileReplaced {
                part: self.part.clone(),
                path: path.clone(),
            });
        }
        let available = meta.len().saturating_sub(self.offset);
        if available < self.len || (self.to_end && available != self.len) {
            return Err(self.size_changed(available));
        }
        if self.given.is_none() {
            // Read-ahead hint only; failure changes nothing.
            crate::sys::advise_sequential(&file, self.offset);
        }
        Ok(file)
    }

    /// Fills `buf` from byte `at` of the part's data, which must lie within `len`.
    pub(crate) fn read_at(&self, file: &File, at: u64, buf: &mut [u8]) -> Result<()> {
        debug_assert!(at + buf.len() as u64 <= self.len);
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], self.offset + at + done as u64) {
                Ok(0) => {
                    let actual = file
                        .metadata()
                        .map_or(at + done as u64, |m| m.len().saturating_sub(self.offset));
                    return Err(self.size_changed(actual));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.part, self.path.as_deref(), e)),
            }
        }
        Ok(())
    }

    /// After the last byte: the file must end there and, for paths, still be the same file.
    pub(crate) fn check_end(&self, file: &File) -> Result<()> {
        let mut probe = [0u8; 1];
        if self.to_end {
            loop {
                match file.read_at(&mut probe, self.offset + self.len) {
                    Ok(0) => break,
                    Ok(_) => {
                        let actual = file
                            .metadata()
                            .map_or(self.len + 1, |m| m.len().saturating_sub(self.offset));
                        return Err(self.size_changed(actual));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_error(&self.part, self.path.as_deref(), e)),
                }
            }
        }
        if let (Some(identity), Some(path)) = (self.identity, &self.path) {
            match fs::metadata(path) {
                Ok(meta) if FileStat::of(&meta).identity == identity => {}
                _ => {
                    return Err(Error::FileReplaced {
                        part: self.part.clone(),
                        path: path.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}
