//! Building a body from parts, and streaming it from any byte offset.
//!
//! The body is a list of segments: rendered header bytes (with small in-memory values coalesced
//! into them), large in-memory values, files and readers. The Content-Length is the sum of the
//! segments' lengths, where the header segments are the very bytes that will be sent, so it
//! cannot disagree with what the stream produces.

use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::boundary;
use crate::error::{Error, Result};
use crate::escape::EscapeMode;
use crate::file::FileData;
use crate::header::{self, PartHead};
use crate::part::{Part, PartReader, SharedBytes, Source};
use crate::scan::{self, DelimiterScanner};

/// In-memory values up to this size are copied next to their header; larger ones are sent from
/// their own buffer without a copy.
const INLINE_MAX: usize = 64 * 1024;

/// File data is read and scanned for the delimiter in pieces of this size, so the scan finds
/// each piece still in the core's L2 cache (measured: 1 MiB pieces made the scan cost ~20 %).
const SCAN_PIECE: usize = 256 * 1024;

/// How a body is built.
#[derive(Debug, Clone, Default)]
pub struct FormOptions {
    /// The boundary; `None` generates one with 128 random bits. A given boundary is validated
    /// against RFC 2046 and used as it is.
    pub boundary: Option<String>,
    /// How names and filenames are escaped.
    pub escape: EscapeMode,
    /// Skip scanning file and reader data for the delimiter while streaming. In-memory values are
    /// always checked when the body is built.
    pub skip_stream_boundary_check: bool,
}

/// A multipart/form-data form under construction.
#[derive(Debug, Default)]
pub struct Form {
    parts: Vec<Part>,
}

impl Form {
    /// An empty form.
    pub fn new() -> Form {
        Form::default()
    }

    /// Adds a part.
    #[must_use]
    pub fn part(mut self, part: Part) -> Form {
        self.parts.push(part);
        self
    }

    /// Adds a part in place.
    pub fn push(&mut self, part: Part) {
        self.parts.push(part);
    }

    /// How many parts the form has.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the form has no parts.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Validates every part, measures every file (reading none), renders every header and
    /// returns the body, ready to stream from its first byte.
    pub fn build(self, options: &FormOptions) -> Result<Body> {
        Body::build(self.parts, options)
    }
}

enum Segment {
    Inline(Vec<u8>),
    Shared(SharedBytes),
    File(FileData),
    Reader(ReaderData),
}

impl Segment {
    fn len(&self) -> Option<u64> {
        match self {
            Segment::Inline(v) => Some(v.len() as u64),
            Segment::Shared(b) => Some((**b).as_ref().len() as u64),
            Segment::File(f) => Some(f.len),
            Segment::Reader(r) => r.len,
        }
    }
}

struct ReaderData {
    part: String,
    reader: Box<dyn PartReader>,
    len: Option<u64>,
    /// Whether any byte has been read since the last rewind.
    touched: bool,
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

/// The pieces of a part once its data has been looked at.
enum Data {
    Memory(SharedBytes),
    File(FileData),
    Reader(Box<dyn PartReader>, Option<u64>),
}

impl Body {
    fn build(parts: Vec<Part>, options: &FormOptions) -> Result<Body> {
        if let Some(given) = &options.boundary {
            boundary::validate(given)?;
        }
        let mut heads = Vec::with_capacity(parts.len());
        let mut datas = Vec::with_capacity(parts.len());
        for part in parts {
            let is_file = part.source.is_file_like();
            let data = match part.source {
                Source::Bytes(bytes) => Data::Memory(bytes),
                Source::Path(path) => Data::File(FileData::from_path(&part.name, &path)?),
                Source::File { file, offset, len } => {
                    Data::File(FileData::from_file(&part.name, file, offset, len)?)
                }
                Source::Reader { reader, len } => Data::Reader(reader, len),
            };
            let head = (
                part.name,
                part.filename,
                part.content_type,
                part.headers,
                is_file,
            );
            header::validate(&PartHead {
                name: &head.0,
                filename: head.1.as_deref(),
                content_type: head.2.as_deref(),
                headers: &head.3,
                is_file,
            })?;
            heads.push(head);
            datas.push(data);
        }
        let boundary = choose_boundary(options.boundary.as_deref(), &heads, &datas)?;

        let mut segments = Vec::new();
        let mut part_starts = Vec::with_capacity(heads.len() + 1);
        let mut inline = Vec::new();
        let mut offset: Option<u64> = Some(0);
        let inline_start =
            |offset: Option<u64>, inline: &Vec<u8>| offset.map(|o| o + inline.len() as u64);
        for ((name, filename, content_type, headers, is_file), data) in heads.into_iter().zip(datas)
        {
            part_starts.push(inline_start(offset, &inline).unwrap_or(u64::MAX));
            let head = PartHead {
                name: &name,
                filename: filename.as_deref(),
                content_type: content_type.as_deref(),
                headers: &headers,
                is_file,
            };
            header::render(&mut inline, &boundary, &head, options.escape);
            match data {
                Data::Memory(bytes) if (*bytes).as_ref().len() <= INLINE_MAX => {
                    inline.extend_from_slice((*bytes).as_ref());
                }
                other => {
                    let segment = match other {
                        Data::Memory(bytes) => Segment::Shared(bytes),
                        Data::File(file) => Segment::File(file),
                        Data::Reader(reader, len) => Segment::Reader(ReaderData {
                            part: name.clone(),
                            reader,
                            len,
                            touched: false,
                        }),
                    };
                    offset = push_segment(&mut segments, offset, Segment::Inline(inline));
                    inline = Vec::new();
                    offset = push_segment(&mut segments, offset, segment);
                }
            }
            inline.extend_from_slice(b"\r\n");
        }
        part_starts.push(inline_start(offset, &inline).unwrap_or(u64::MAX));
        inline.extend_from_slice(b"--");
        inline.extend_from_slice(boundary.as_bytes());
        inline.extend_from_slice(b"--\r\n");
        let len = push_segment(&mut segments, offset, Segment::Inline(inline));

        let mut starts = Vec::with_capacity(segments.len());
        let mut at = 0u64;
        for segment in &segments {
            starts.push(at);
            at = at.saturating_add(segment.len().unwrap_or(u64::MAX));
        }
        let scanner =
            (!options.skip_stream_boundary_check).then(|| DelimiterScanner::new(&boundary));
        Ok(Body {
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
        })
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

fn push_segment(segments: &mut Vec<Segment>, offset: Option<u64>, segment: Segment) -> Option<u64> {
    let len = segment.len();
    // Empty files and readers stay: streaming still checks that they did not change.
    if len == Some(0) && matches!(segment, Segment::Inline(_) | Segment::Shared(_)) {
        return offset;
    }
    segments.push(segment);
    match (offset, len) {
        (Some(o), Some(l)) => Some(o + l),
        _ => None,
    }
}

type Head = (
    String,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
    bool,
);

/// Uses the caller's boundary, refusing it if an in-memory value contains its delimiter; or
/// generates one that no in-memory value contains.
fn choose_boundary(given: Option<&str>, heads: &[Head], datas: &[Data]) -> Result<String> {
    let collision = |boundary: &str| {
        let checker = scan::ValueChecker::new(boundary);
        heads.iter().zip(datas).find_map(|(head, data)| match data {
            Data::Memory(bytes) => checker
                .find((**bytes).as_ref())
                .map(|at| (head.0.clone(), at)),
            _ => None,
        })
    };
    if let Some(given) = given {
        return match collision(given) {
            Some((part, offset)) => Err(Error::BoundaryInData { part, offset }),
            None => Ok(given.to_owned()),
        };
    }
    loop {
        let candidate = boundary::generate()?;
        if collision(&candidate).is_none() {
            return Ok(candidate);
        }
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
