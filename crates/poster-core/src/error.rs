//! The one error type of the encoder.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What a path that is not a regular file is instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharacterDevice,
    /// A block device.
    BlockDevice,
    /// Anything else that is not a regular file.
    Other,
}

impl FileKind {
    /// The `errno` an operating system call reports for this kind where one exists
    /// (`EISDIR` for a directory), so callers can raise the platform's own error.
    pub fn errno(self) -> Option<i32> {
        match self {
            FileKind::Directory => Some(rustix::io::Errno::ISDIR.raw_os_error()),
            _ => None,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::CharacterDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Other => "a special file",
        })
    }
}

/// Everything that can go wrong while building or streaming a multipart body.
///
/// Every variant names its culprit (the part, the file, the header), so that the message alone
/// tells a user what to fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Opening, sizing or reading a file or reader failed.
    Io {
        /// The file involved, when the source is a path.
        path: Option<PathBuf>,
        /// The field name of the part being read.
        part: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A path given as a file part is not a regular file (a directory, FIFO, socket or device).
    NotARegularFile {
        /// The offending path.
        path: PathBuf,
        /// What the path is instead.
        kind: FileKind,
    },
    /// A file or reader produced a different number of bytes than the Content-Length promised.
    SizeChanged {
        /// The field name of the part.
        part: String,
        /// The file, when the source is a path.
        path: Option<PathBuf>,
        /// The size the body was built with.
        expected: u64,
        /// The size found while streaming (a lower bound when the source grew).
        actual: u64,
    },
    /// A file behind a path was replaced (another inode) after the body was built.
    FileReplaced {
        /// The field name of the part.
        part: String,
        /// The path whose file changed.
        path: PathBuf,
    },
    /// The data of a part contains the multipart delimiter (`CRLF--boundary`, or `--boundary` at
    /// the start of the part's data), which would end the part early at the server.
    BoundaryInData {
        /// The field name of the part.
        part: String,
        /// Byte offset of the delimiter inside the part's data.
        offset: u64,
    },
    /// A caller-supplied boundary breaks RFC 2046 (1-70 `bchars`, not ending in a space).
    InvalidBoundary {
        /// The boundary as given.
        boundary: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header value (content type or custom part header) or header name cannot be sent safely.
    InvalidHeader {
        /// The field name of the part.
        part: String,
        /// Which header ("Content-Type", or the custom header's name).
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A seek asked for a position outside `0..=len`.
    SeekOutOfRange {
        /// The position asked for.
        offset: i128,
        /// The body's length.
        len: u64,
    },
    /// The body cannot move to the requested position: it contains a reader of unknown size or
    /// a reader that cannot rewind.
    NotSeekable {
        /// Why.
        reason: String,
    },
    /// The operating system could not supply random bytes for a boundary.
    Random(String),
}

impl Error {
    /// The I/O error kind behind this error, when there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

fn part_label(part: &str) -> String {
    format!("part {part:?}")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                path: Some(path),
                part,
                source,
            } => write!(
                f,
                "{}: cannot read file {}: {source}",
                part_label(part),
                path.display()
            ),
            Error::Io {
                path: None,
                part,
                source,
            } => write!(f, "{}: reading the data failed: {source}", part_label(part)),
            Error::NotARegularFile { path, kind } => write!(
                f,
                "{} is {kind}, not a regular file; pass an open file object to stream it \
                 with chunked transfer instead",
                path.display()
            ),
            Error::SizeChanged {
                part,
                path,
                expected,
                actual,
            } => {
                let what = match path {
                    Some(path) => format!("file {}", path.display()),
                    None => "data".to_owned(),
                };
                write!(
                    f,
                    "{}: {what} changed size while streaming: the body was built for {expected} \
                     bytes but {actual} were found; the Content-Length would be wrong",
                    part_label(part)
                )
            }
            Error::FileReplaced { part, path } => write!(
                f,
                "{}: file {} was replaced after the body was built",
                part_label(part),
                path.display()
            ),
            Error::BoundaryInData { part, offset } => write!(
                f,
                "boundary found in file data: {} contains the multipart delimiter at byte \
                 {offset}; choose another boundary",
                part_label(part)
            ),
            Error::InvalidBoundary { boundary, reason } => {
                write!(f, "invalid boundary {boundary:?}: {reason}")
            }
            Error::InvalidHeader {
                part,
                header,
                reason,
            } => write!(f, "{}: header {header:?} {reason}", part_label(part)),
            Error::SeekOutOfRange { offset, len } => write!(
                f,
                "seek position {offset} is outside the body (0 to {len} bytes)"
            ),
            Error::NotSeekable { reason } => write!(f, "the body cannot seek: {reason}"),
            Error::Random(msg) => write!(f, "cannot generate a random boundary: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        match err {
            Error::Io { source, .. } if source.get_ref().is_some() => source,
            Error::Io { ref source, .. } => io::Error::new(source.kind(), err),
            Error::SeekOutOfRange { .. } | Error::NotSeekable { .. } => {
                io::Error::new(io::ErrorKind::InvalidInput, err)
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
