//! File parts: sizing them from metadata when the body is built, and reading them with
//! positioned reads while it streams, checking that they still are what was measured.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Which file a path named when it was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    fn of(meta: &Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

fn kind_name(meta: &Metadata) -> Option<&'static str> {
    let ft = meta.file_type();
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a FIFO")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
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
    /// Measures a file by path: follows symlinks, requires a regular file the process may read,
    /// and reads nothing.
    pub(crate) fn from_path(part: &str, path: &Path) -> Result<FileData> {
        let meta = fs::metadata(path).map_err(|e| io_error(part, Some(path), e))?;
        if let Some(kind) = kind_name(&meta) {
            return Err(Error::NotARegularFile {
                path: path.to_path_buf(),
                kind,
            });
        }
        rustix::fs::access(path, rustix::fs::Access::READ_OK)
            .map_err(|e| io_error(part, Some(path), e.into()))?;
        Ok(FileData {
            part: part.to_owned(),
            path: Some(path.to_path_buf()),
            given: None,
            offset: 0,
            len: meta.len(),
            to_end: true,
            identity: Some(Identity::of(&meta)),
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
        if let Some(kind) = kind_name(&meta) {
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

    fn size_changed(&self, actual: u64) -> Error {
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
            && Identity::of(&meta) != identity
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
            let _ = rustix::fs::fadvise(&*file, self.offset, None, rustix::fs::Advice::Sequential);
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
                Ok(meta) if Identity::of(&meta) == identity => {}
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
