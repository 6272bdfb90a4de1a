//! Streaming a built body from any byte offset.
//!
//! The body is a list of segments laid out by [`crate::Form::build`]: rendered header bytes
//! (with small in-memory values coalesced into them), large in-memory values, files and
//! readers. The Content-Length is the sum of the segments' lengths, where the header segments
//! are the very bytes that will be sent, so it cannot disagree with what the stream produces.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::boundary;
use crate::error::{Error, Result};
use crate::file::FileData;
use crate::part::SharedBytes;
use crate::scan::DelimiterScanner;

mod file_segment;
mod fill_buf;
mod reader_segment;

use file_segment::OpenFile;
use fill_buf::FillBuf;
pub(crate) use reader_segment::ReaderData;

/// One piece of the body. Each kind has its own fill and resume strategy (bytes are copied,
/// files read with positioned reads, readers read forward); [`Body`] is the cursor over them.
pub(crate) enum Segment {
    Inline(Vec<u8>),
    Shared(SharedBytes),
    File(FileData),
    Reader(ReaderData),
}

impl Segment {
    pub(crate) fn len(&self) -> Option<u64> {
        match self {
            Segment::Inline(v) => Some(v.len() as u64),
            Segment::Shared(b) => Some((**b).as_ref().len() as u64),
            Segment::File(f) => Some(f.len),
            Segment::Reader(r) => r.len,
        }
    }
}

/// File data handed out by [`Body::next_file_span`]: `len` bytes of `file` from `offset`.
#[derive(Debug, Clone)]
pub struct FileSpan {
    /// The open file; keep it until the bytes are sent.
    pub file: Arc<File>,
    /// Where the bytes start in the file.
    pub offset: u64,
    /// How many bytes.
    pub len: u64,
    /// The field name of the part, for errors.
    pub part: String,
}

/// A multipart/form-data body: its length, its headers, and a stream of its bytes that can start
/// at any offset. Implements [`std::io::Read`].
pub struct Body {
    boundary: String,
    segments: Vec<Segment>,
    /// Start offset of each segment; exact while every earlier segment has a known length.
    starts: Vec<u64>,
    /// Offset of each part's first header byte, and of the closing delimiter last.
    part_starts: Vec<u64>,
    len: Option<u64>,
    pos: u64,
    segment: usize,
    segment_pos: u64,
    open: Option<OpenFile>,
    scanner: Option<DelimiterScanner>,
    /// Reused by readers filling memory that is not initialised (a reader takes `&mut [u8]`).
    reader_scratch: Vec<u8>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("boundary", &self.boundary)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl Body {
    /// A body over laid-out segments, positioned at its first byte.
    pub(crate) fn new(
        boundary: String,
        segments: Vec<Segment>,
        part_starts: Vec<u64>,
        len: Option<u64>,
        scan_stream: bool,
    ) -> Body {
        let mut starts = Vec::with_capacity(segments.len());
        let mut at = 0u64;
        for segment in &segments {
            starts.push(at);
            at = at.saturating_add(segment.len().unwrap_or(u64::MAX));
        }
        let scanner = scan_stream.then(|| DelimiterScanner::new(&boundary));
        Body {
            boundary,
            segments,
            starts,
            part_starts,
            len,
            pos: 0,
            segment: 0,
            segment_pos: 0,
            open: None,
            scanner,
            reader_scratch: Vec::new(),
        }
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The `Content-Type` header value: `multipart/form-data; boundary=...`.
    pub fn content_type(&self) -> String {
        boundary::content_type(&self.boundary)
    }

    /// The exact Content-Length, or `None` when a reader of unknown size makes the body go out
    /// with chunked transfer encoding.
    pub fn content_length(&self) -> Option<u64> {
        self.len
    }

    /// The offset of the next byte the stream produces.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// When the next bytes are file data that need no scanning, hands them out as a span of the
    /// open file instead of copying them, for zero-copy sending (`sendfile(2)`): at most `max`
    /// bytes, and the position moves past them. The file's size and identity are checked as
    /// when its bytes are read; the caller must still treat a short `sendfile` as the file having
    /// shrunk. `None` when the next bytes are not such file data.
    pub fn next_file_span(&mut self, max: u64) -> Result<Option<FileSpan>> {
        if self.scanner.is_some() || max == 0 {
            return Ok(None);
        }
        let index = self.segment;
        let at = self.segment_pos;
        let Some(Segment::File(file)) = self.segments.get(index) else {
            return Ok(None);
        };
        let (handle, _) = file_segment::handle(file, index, &mut self.open)?;
        let handle = Arc::clone(handle);
        let len = (file.len - at).min(max);
        let span = FileSpan {
            file: Arc::clone(&handle),
            offset: file.offset + at,
            len,
            part: file.part.clone(),
        };
        if at + len == file.len {
            file.check_end(&handle)?;
            self.open = None;
            self.segment += 1;
            self.segment_pos = 0;
        } else {
            self.segment_pos += len;
        }
        self.pos += len;
        Ok(Some(span))
    }

    /// How many bytes (at most `max`) come before the next file data that
    /// [`Body::next_file_span`] would hand out, so that a zero-copy sender copies no file bytes.
    pub fn bytes_before_file_span(&self, max: usize) -> usize {
        if self.scanner.is_some() {
            return max;
        }
        let mut total: u64 = 0;
        for (index, segment) in self.segments.iter().enumerate().skip(self.segment) {
            let Some(len) = segment.len() else {
                return max;
            };
            if matches!(segment, Segment::File(_)) || total >= max as u64 {
                break;
            }
            let from = if index == self.segment {
                self.segment_pos
            } else {
                0
            };
            total += len - from;
        }
        total.min(max as u64) as usize
    }

    /// Whether the stream has produced its last byte.
    pub fn is_finished(&self) -> bool {
        self.segment >= self.segments.len()
    }

    /// Whether every segment from the current one on is bytes or a file: the body can then be
    /// moved to any later offset at no cost (a reader may not rewind).
    pub(crate) fn only_bytes_and_files_ahead(&self) -> bool {
        self.segments
            .iter()
            .skip(self.segment)
            .all(|segment| !matches!(segment, Segment::Reader(_)))
    }

    /// The offset where each part starts (its `--boundary` line), then the offset of the closing
    /// delimiter. Empty when the length is unknown.
    pub fn part_starts(&self) -> &[u64] {
        if self.len.is_some() {
            &self.part_starts
        } else {
            &[]
        }
    }

    /// Releases the open file, if any; the stream reopens it if it is read again.
    pub fn release(&mut self) {
        self.open = None;
    }

    /// Moves the stream to byte `offset`. Any offset in `0..=len` works for a body of known
    /// length whose readers can rewind; a body of unknown length can only go back to 0.
    pub fn seek(&mut self, offset: u64) -> Result<()> {
        if offset == self.pos {
            return Ok(());
        }
        match self.len {
            Some(len) if offset > len => {
                return Err(Error::SeekOutOfRange {
                    offset: i128::from(offset),
                    len,
                });
            }
            None if offset != 0 => {
                return Err(Error::NotSeekable {
                    reason: "its length is unknown (a reader of unknown size), so it can only \
                             go back to the start"
                        .to_owned(),
                });
            }
            _ => {}
        }
        let segment = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let segment = if offset == self.len.unwrap_or(0) && self.len.is_some() {
            self.segments.len()
        } else {
            segment
        };
        self.rolling_back(|body| body.seek_to(segment, offset))
    }

    /// Runs `step`; if it fails, the stream goes back to where it was (and closes the open
    /// file), so a failed read or seek can be retried or reported without a moved position.
    fn rolling_back<T>(&mut self, step: impl FnOnce(&mut Body) -> Result<T>) -> Result<T> {
        let saved = (self.segment, self.segment_pos, self.pos);
        let result = step(self);
        if result.is_err() {
            (self.segment, self.segment_pos, self.pos) = saved;
            self.open = None;
        }
        result
    }

    fn seek_to(&mut self, segment: usize, offset: u64) -> Result<()> {
        // Readers at or after the target have to start over; the ones before it stay consumed.
        for seg in self.segments.iter_mut().skip(segment) {
            if let Segment::Reader(r) = seg {
                r.rewind()?;
            }
        }
        self.segment = segment;
        self.segment_pos = if segment < self.segments.len() {
            offset - self.starts[segment]
        } else {
            0
        };
        self.pos = offset;
        self.open = None;
        if self.segment_pos > 0 {
            let (index, at) = (self.segment, self.segment_pos);
            let context = self.boundary.len() + 3;
            let scanner = self.scanner.as_mut();
            match &mut self.segments[index] {
                Segment::Reader(r) => r.resume(at, context, scanner)?,
                Segment::File(f) => {
                    file_segment::resume(f, index, at, context, &mut self.open, scanner)?;
                }
                Segment::Inline(_) | Segment::Shared(_) => {}
            }
        }
        Ok(())
    }

    /// How long the next chunk of at most `max` bytes will be; `None` at the end. For a body of
    /// unknown length this is an upper bound.
    /// `Some(0)` means only empty parts are left: [`Body::fill`] with an empty buffer checks
    /// them and finishes the body.
    pub fn next_chunk_len(&self, max: usize) -> Option<usize> {
        if self.is_finished() {
            return None;
        }
        Some(match self.len {
            Some(len) => (len - self.pos).min(max as u64) as usize,
            None => max,
        })
    }

    /// Fills `buf` with the next bytes of the body and returns how many were written: all of
    /// `buf` unless the body ends first, or a reader of unknown size returned what it had.
    /// 0 means the body is complete. On an error the position does not move.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.rolling_back(|body| body.fill_into(buf))
    }

    /// [`Body::fill`] into memory that need not be initialised (for example a freshly allocated
    /// buffer that the caller hands out afterwards). The first `n` bytes, `n` being the result,
    /// are initialised when it returns `Ok(n)`; nothing is read from `buf`.
    pub fn fill_uninit(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize> {
        self.rolling_back(|body| body.fill_into(buf))
    }

    fn fill_into<B: FillBuf + ?Sized>(&mut self, buf: &mut B) -> Result<usize> {
        let mut written = 0;
        while self.segment < self.segments.len() {
            if written == buf.capacity() && self.segments[self.segment].len() != Some(0) {
                break;
            }
            let index = self.segment;
            let at = self.segment_pos;
            let scanner = self.scanner.as_mut();
            let (n, segment_done) = match &mut self.segments[index] {
                Segment::Inline(bytes) => copy_from(bytes, at, buf, written),
                Segment::Shared(bytes) => copy_from((**bytes).as_ref(), at, buf, written),
                Segment::File(file) => {
                    file_segment::fill(file, index, at, buf, written, &mut self.open, scanner)?
                }
                Segment::Reader(reader) => {
                    let filled =
                        reader.fill(at, buf, written, &mut self.reader_scratch, scanner)?;
                    if filled.hand_out {
                        self.segment_pos += filled.len as u64;
                        self.pos += filled.len as u64;
                        return Ok(written + filled.len);
                    }
                    (filled.len, filled.done)
                }
            };
            written += n;
            self.pos += n as u64;
            if segment_done {
                self.segment += 1;
                self.segment_pos = 0;
            } else {
                self.segment_pos += n as u64;
            }
        }
        Ok(written)
    }
}

/// The bytes strategy: copy from byte `at` of `bytes` into `buf[start..]`.
fn copy_from<B: FillBuf + ?Sized>(
    bytes: &[u8],
    at: u64,
    buf: &mut B,
    start: usize,
) -> (usize, bool) {
    let rest = &bytes[at as usize..];
    let n = rest.len().min(buf.capacity() - start);
    buf.copy_at(start, &rest[..n]);
    (n, n == rest.len())
}

impl io::Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fill(buf).map_err(io::Error::from)
    }
}

impl io::Seek for Body {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let target: i128 = match pos {
            io::SeekFrom::Start(o) => i128::from(o),
            io::SeekFrom::Current(d) => i128::from(self.pos) + i128::from(d),
            io::SeekFrom::End(d) => match self.len {
                Some(len) => i128::from(len) + i128::from(d),
                None => {
                    return Err(Error::NotSeekable {
                        reason: "its length is unknown".to_owned(),
                    }
                    .into());
                }
            },
        };
        let len = self.len.unwrap_or(self.pos);
        let offset = u64::try_from(target).map_err(|_| Error::SeekOutOfRange {
            offset: target,
            len,
        })?;
        Body::seek(self, offset)?;
        Ok(offset)
    }
}
