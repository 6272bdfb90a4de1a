//! One part of a form: its name, optional filename, content type, extra headers, and where its
//! data comes from.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Shared, immutable bytes: a `Vec<u8>`, a `String`, or a buffer owned by a host language
/// (for example a Python `bytes` object) that must not be copied.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A sequential reader that is not a plain file, for example a pipe or an object of the host
/// language.
pub trait PartReader: Send {
    /// Reads into `buf`, returning how many bytes were read; 0 means the end of the data.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Moves back to the first byte of the part's data, so that the body can be sent again
    /// (a retry, an auth challenge, a 307/308 redirect). Readers that cannot do this return
    /// an error of kind `Unsupported`, which is the default.
    fn rewind(&mut self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this reader cannot rewind",
        ))
    }
}

/// Adapts any `std::io::Read` into a [`PartReader`] that cannot rewind.
#[derive(Debug)]
pub struct ReadOnce<R>(pub R);

impl<R: io::Read + Send> PartReader for ReadOnce<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// Adapts a `std::io::Read + Seek` into a [`PartReader`] that rewinds to where it started.
#[derive(Debug)]
pub struct Rewindable<R> {
    inner: R,
    start: u64,
}

impl<R: io::Read + io::Seek> Rewindable<R> {
    /// Wraps `inner`, remembering its current position as the start of the part's data.
    pub fn new(mut inner: R) -> io::Result<Self> {
        let start = inner.stream_position()?;
        Ok(Rewindable { inner, start })
    }
}

impl<R: io::Read + io::Seek + Send> PartReader for Rewindable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }

    fn rewind(&mut self) -> io::Result<()> {
        self.inner.seek(io::SeekFrom::Start(self.start)).map(|_| ())
    }
}

/// Where a part's data comes from.
pub enum Source {
    /// Bytes in memory.
    Bytes(SharedBytes),
    /// A file named by a path: sized from its metadata when the body is built, opened only
    /// when the stream reaches it, read with positioned reads.
    Path(PathBuf),
    /// An already-open file: `len` bytes from byte `offset`, read with positioned reads (the
    /// file's own position is neither used nor moved). `None` as `len` means "to the end of the
    /// file as it is when the body is built"; then the file growing later is an error too.
    File {
        /// The open file.
        file: Arc<File>,
        /// Where the part's data starts.
        offset: u64,
        /// How many bytes to send, or `None` for the rest of the file.
        len: Option<u64>,
    },
    /// A reader. With `len: Some(n)` it must produce exactly `n` bytes; with `None` the body's
    /// length is unknown and it has to go out with chunked transfer encoding.
    Reader {
        /// The reader.
        reader: Box<dyn PartReader>,
        /// Its exact length, when known.
        len: Option<u64>,
    },
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bytes(b) => write!(f, "Bytes({} bytes)", (**b).as_ref().len()),
            Source::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Source::File { offset, len, .. } => f
                .debug_struct("File")
                .field("offset", offset)
                .field("len", len)
                .finish_non_exhaustive(),
            Source::Reader { len, .. } => f
                .debug_struct("Reader")
                .field("len", len)
                .finish_non_exhaustive(),
        }
    }
}

impl Source {
    /// Wraps owned bytes.
    pub fn bytes(data: impl Into<Vec<u8>>) -> Source {
        Source::Bytes(Arc::new(data.into()))
    }

    /// True for sources that poster and browsers treat as a file (everything but in-memory
    /// values).
    pub fn is_file_like(&self) -> bool {
        !matches!(self, Source::Bytes(_))
    }
}

/// One part of a multipart/form-data body.
#[derive(Debug)]
pub struct Part {
    pub(crate) name: String,
    pub(crate) filename: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) source: Source,
}

impl Part {
    /// A part named `name` with data from `source`, no filename and no content type.
    pub fn new(name: impl Into<String>, source: Source) -> Part {
        Part {
            name: name.into(),
            filename: None,
            content_type: None,
            headers: Vec::new(),
            source,
        }
    }

    /// A text field.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Part {
        Part::new(name, Source::bytes(value.into()))
    }

    /// A field of raw bytes.
    pub fn bytes(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Part {
        Part::new(name, Source::bytes(value))
    }

    /// A file part read from `path`, with the path's last component as its filename.
    pub fn file(name: impl Into<String>, path: impl AsRef<Path>) -> Part {
        let path = path.as_ref();
        let filename = path.file_name().map(|f| f.to_string_lossy().into_owned());
        Part {
            filename,
            ..Part::new(name, Source::Path(path.to_path_buf()))
        }
    }

    /// Sets the filename sent in `Content-Disposition`.
    #[must_use]
    pub fn filename(mut self, filename: impl Into<String>) -> Part {
        self.filename = Some(filename.into());
        self
    }

    /// Sets the part's `Content-Type`.
    #[must_use]
    pub fn content_type(mut self, content_type: impl Into<String>) -> Part {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds a header line to the part. A `Content-Type` given here replaces the part's content
    /// type; `Content-Disposition` is refused when the body is built.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Part {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The field name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
