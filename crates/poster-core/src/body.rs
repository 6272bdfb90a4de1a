//! Streaming a built body from any byte offset.
//!
//! The body is a list of segments laid out by [`crate::Form::build`]: rendered header bytes
//! (with small in-memory values coalesced into them), large in-memory values, files and
//! readers. The Content-Length is the sum of the segments' lengths, where the header segments
//! are the very bytes that will be sent, so it cannot disagree with what the stream produces.

use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::boundary;
use crate::error::{Error, Result};
use crate::file::FileData;
use crate::part::{PartReader, SharedBytes};
use crate::scan::DelimiterScanner;

/// File data is read and scanned for the delimiter in pieces of this size, so the scan finds
/// each piece still in the core's L2 cache (measured: 1 MiB pieces made the scan cost ~20 %).
const SCAN_PIECE: usize = 256 * 1024;

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

pub(crate) struct ReaderData {
    pub(crate) part: String,
    pub(crate) reader: Box<dyn PartReader>,
    pub(crate) len: Option<u64>,
    /// Whether any byte has been read since the last rewind.
    pub(crate) touched: bool,
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
}

/// The file a stream is currently reading.
struct OpenFile {
    segment: usize,
    file: Arc<File>,
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
        if self.open.as_ref().is_none_or(|o| o.segment != index) {
            self.open = Some(OpenFile {
                segment: index,
                file: file.open()?,
            });
        }
        let handle = Arc::clone(&self.open.as_ref().expect("opened above").file);
        let len = (file.len - at).min(max);
        let span = FileSpan {
            file: Arc::clone(&handle),
            offset: file.offset + at,
            len,
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
        let saved = (self.segment, self.segment_pos, self.pos);
        let result = self.seek_to(segment, offset);
        if result.is_err() {
            (self.segment, self.segment_pos, self.pos) = saved;
            self.open = None;
        }
        result
    }

    fn seek_to(&mut self, segment: usize, offset: u64) -> Result<()> {
        // Readers at or after the target have to start over; the ones before it stay consumed.
        for seg in self.segments.iter_mut().skip(segment) {
            if let Segment::Reader(r) = seg
                && r.touched
            {
                r.reader.rewind().map_err(|e| Error::NotSeekable {
                    reason: format!("part {:?}: its reader cannot rewind: {e}", r.part),
                })?;
                r.touched = false;
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
            self.resume_within_segment()?;
        }
        Ok(())
    }

    /// After a seek into the middle of a segment: readers skip to the position, and the
    /// delimiter scanner gets the bytes just before it.
    fn resume_within_segment(&mut self) -> Result<()> {
        let at = self.segment_pos;
        match &mut self.segments[self.segment] {
            Segment::Reader(r) => {
                let context = self.boundary.len() + 3;
                let mut scratch = vec![0u8; 64 * 1024];
                // "\r\n" (the header's end) plus the last skipped bytes: a delimiter that
                // straddles the seek position is still found.
                let mut preceding = b"\r\n".to_vec();
                let mut left = at;
                r.touched = true;
                while left > 0 {
                    let want = scratch.len().min(left as usize);
                    let n = match r.reader.read(&mut scratch[..want]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(Error::Io {
                                path: None,
                                part: r.part.clone(),
                                source: e,
                            });
                        }
                    };
                    if n == 0 {
                        return Err(Error::SizeChanged {
                            part: r.part.clone(),
                            path: None,
                            expected: r.len.unwrap_or(0),
                            actual: at - left,
                        });
                    }
                    preceding.extend_from_slice(&scratch[..n]);
                    if preceding.len() > 2 * context {
                        preceding.drain(..preceding.len() - context);
                    }
                    left -= n as u64;
                }
                if let Some(scanner) = &mut self.scanner {
                    scanner.start(&preceding);
                }
            }
            Segment::File(f) => {
                if let Some(scanner) = &mut self.scanner {
                    let file = f.open()?;
                    let context = (self.boundary.len() + 3) as u64;
                    let from = at.saturating_sub(context);
                    let mut preceding = b"\r\n".to_vec();
                    let mut before = vec![0u8; (at - from) as usize];
                    f.read_at(&file, from, &mut before)?;
                    preceding.extend_from_slice(&before);
                    scanner.start(&preceding);
                    self.open = Some(OpenFile {
                        segment: self.segment,
                        file,
                    });
                }
            }
            Segment::Inline(_) | Segment::Shared(_) => {}
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
        let saved = (self.segment, self.segment_pos, self.pos);
        let result = self.fill_inner(buf);
        if result.is_err() {
            (self.segment, self.segment_pos, self.pos) = saved;
            self.open = None;
        }
        result
    }

    fn fill_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut written = 0;
        while self.segment < self.segments.len() {
            if written == buf.len() && self.segments[self.segment].len() != Some(0) {
                break;
            }
            let index = self.segment;
            let at = self.segment_pos;
            let space = &mut buf[written..];
            let (n, segment_done) = match &mut self.segments[index] {
                Segment::Inline(bytes) => copy_from(bytes, at, space),
                Segment::Shared(bytes) => copy_from((**bytes).as_ref(), at, space),
                Segment::File(file) => {
                    if self.open.as_ref().is_none_or(|o| o.segment != index) {
                        self.open = Some(OpenFile {
                            segment: index,
                            file: file.open()?,
                        });
                        if at == 0
                            && let Some(scanner) = &mut self.scanner
                        {
                            scanner.start(b"\r\n");
                        }
                    }
                    let handle = &self.open.as_ref().expect("opened above").file;
                    let n = (file.len - at).min(space.len() as u64) as usize;
                    // Read in cache-sized pieces and scan each while it is still in cache.
                    let mut piece_start = 0;
                    while piece_start < n {
                        let piece_end = (piece_start + SCAN_PIECE).min(n);
                        let piece = &mut space[piece_start..piece_end];
                        let piece_at = at + piece_start as u64;
                        file.read_at(handle, piece_at, piece)?;
                        if let Some(scanner) = &mut self.scanner
                            && let Some(found) = scanner.scan(piece)
                        {
                            return Err(Error::BoundaryInData {
                                part: file.part.clone(),
                                offset: (piece_at as i64 + found).max(0) as u64,
                            });
                        }
                        piece_start = piece_end;
                    }
                    let done = at + n as u64 == file.len;
                    if done {
                        file.check_end(handle)?;
                        self.open = None;
                    }
                    (n, done)
                }
                Segment::Reader(reader) => {
                    if at == 0
                        && !reader.touched
                        && let Some(scanner) = &mut self.scanner
                    {
                        scanner.start(b"\r\n");
                    }
                    let (n, done) = read_reader(reader, at, space)?;
                    if let Some(scanner) = &mut self.scanner
                        && let Some(found) = scanner.scan(&space[..n])
                    {
                        return Err(Error::BoundaryInData {
                            part: reader.part.clone(),
                            offset: (at as i64 + found).max(0) as u64,
                        });
                    }
                    if n > 0 && !done && reader.len.is_none() {
                        // Hand out what an unsized reader had rather than wait for more.
                        self.segment_pos += n as u64;
                        self.pos += n as u64;
                        return Ok(written + n);
                    }
                    (n, done)
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

fn copy_from(bytes: &[u8], at: u64, space: &mut [u8]) -> (usize, bool) {
    let rest = &bytes[at as usize..];
    let n = rest.len().min(space.len());
    space[..n].copy_from_slice(&rest[..n]);
    (n, n == rest.len())
}

/// Reads the next bytes of a reader; returns the count and whether the reader is done.
fn read_reader(r: &mut ReaderData, at: u64, space: &mut [u8]) -> Result<(usize, bool)> {
    let io_err = |part: &str, e: io::Error| Error::Io {
        path: None,
        part: part.to_owned(),
        source: e,
    };
    let want = match r.len {
        Some(len) => (len - at).min(space.len() as u64) as usize,
        None => space.len(),
    };
    r.touched = true;
    let mut n = 0;
    while n < want {
        match r.reader.read(&mut space[n..want]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if r.len.is_none() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(&r.part, e)),
        }
    }
    match r.len {
        Some(len) => {
            let reached = at + n as u64;
            if reached < len && n < want {
                return Err(Error::SizeChanged {
                    part: r.part.clone(),
                    path: None,
                    expected: len,
                    actual: reached,
                });
            }
            if reached == len {
                let mut probe = [0u8; 1];
                let extra = loop {
                    match r.reader.read(&mut probe) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        other => break other.map_err(|e| io_err(&r.part, e))?,
                    }
                };
                if extra > 0 {
                    return Err(Error::SizeChanged {
                        part: r.part.clone(),
                        path: None,
                        expected: len,
                        actual: len + extra as u64,
                    });
                }
                return Ok((n, true));
            }
            Ok((n, false))
        }
        None => Ok((n, n == 0)),
    }
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
