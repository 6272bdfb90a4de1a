//! Collecting parts and laying them out as a body.
//!
//! Plain text fields are kept in two shared buffers (names, values) rather than one allocation
//! each, so a form of 100,000 small fields costs a few large allocations, not 300,000 small ones.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::body::{Body, ReaderData, Segment};
use crate::boundary;
use crate::error::{Error, Result};
use crate::escape::EscapeMode;
use crate::file::{FileData, Measurer};
use crate::header::{self, FieldTemplate, PartHead};
use crate::part::{Part, PartReader, SharedBytes, Source};
use crate::scan::ValueChecker;

/// In-memory values up to this size are copied next to their header; larger ones are sent from
/// their own buffer without a copy.
const INLINE_MAX: usize = 64 * 1024;
/// Header bytes of a part besides its name, filename, type and boundary (an estimate used to
/// size the output buffer once).
const HEADER_OVERHEAD: usize = 96;

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

#[derive(Debug)]
enum Item {
    /// A text field whose name and value live in the form's buffers.
    Field {
        name: Range<usize>,
        value: Range<usize>,
    },
    Part(Box<Part>),
}

/// A multipart/form-data form under construction.
#[derive(Debug, Default)]
pub struct Form {
    items: Vec<Item>,
    names: String,
    values: Vec<u8>,
}

impl Form {
    /// An empty form.
    pub fn new() -> Form {
        Form::default()
    }

    /// An empty form with room for `parts` parts.
    pub fn with_capacity(parts: usize) -> Form {
        Form {
            items: Vec::with_capacity(parts),
            ..Form::default()
        }
    }

    /// Adds a part.
    #[must_use]
    pub fn part(mut self, part: Part) -> Form {
        self.push(part);
        self
    }

    /// Adds a part in place.
    pub fn push(&mut self, part: Part) {
        self.items.push(Item::Part(Box::new(part)));
    }

    /// Adds a field with no filename, content type `text/plain; charset=utf-8` and a small
    /// in-memory value, without allocating for it. (Large values are better given as a
    /// [`Part`] with shared bytes, which are not copied.)
    pub fn push_field(&mut self, name: &str, value: &[u8]) {
        let name_start = self.names.len();
        self.names.push_str(name);
        let value_start = self.values.len();
        self.values.extend_from_slice(value);
        self.items.push(Item::Field {
            name: name_start..self.names.len(),
            value: value_start..self.values.len(),
        });
    }

    /// How many parts the form has.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the form has no parts.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Validates every part, measures every file (reading none), renders every header and
    /// returns the body, ready to stream from its first byte.
    pub fn build(self, options: &FormOptions) -> Result<Body> {
        if let Some(given) = &options.boundary {
            boundary::validate(given)?;
        }
        let Form {
            items,
            names,
            values,
        } = self;
        let mut prepared = Vec::with_capacity(items.len());
        let mut paths = 0;
        for item in items {
            prepared.push(match item {
                Item::Field { name, value } => Prepared::Field { name, value },
                Item::Part(part) => {
                    let part = PreparedPart::new(*part)?;
                    paths += usize::from(matches!(part.data, Data::Unmeasured(_)));
                    Prepared::Part(Box::new(part))
                }
            });
        }
        measure_files(&mut prepared, paths)?;
        let text = Text {
            names: &names,
            values: &values,
        };
        let boundary = choose_boundary(options.boundary.as_deref(), &prepared, text)?;
        Ok(layout(prepared, text, boundary, options))
    }
}

#[derive(Clone, Copy)]
struct Text<'a> {
    names: &'a str,
    values: &'a [u8],
}

/// A part whose data has been looked at and whose headers have been checked.
struct PreparedPart {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    is_file: bool,
    data: Data,
}

enum Data {
    Memory(SharedBytes),
    /// A path not measured yet.
    Unmeasured(PathBuf),
    File(FileData),
    Reader(Box<dyn PartReader>, Option<u64>),
}

enum Prepared {
    Field {
        name: Range<usize>,
        value: Range<usize>,
    },
    Part(Box<PreparedPart>),
}

impl PreparedPart {
    fn new(part: Part) -> Result<PreparedPart> {
        let is_file = part.source.is_file_like();
        let data = match part.source {
            Source::Bytes(bytes) => Data::Memory(bytes),
            Source::Path(path) => Data::Unmeasured(path),
            Source::File { file, offset, len } => {
                Data::File(FileData::from_file(&part.name, file, offset, len)?)
            }
            Source::Reader { reader, len } => Data::Reader(reader, len),
        };
        let prepared = PreparedPart {
            name: part.name,
            filename: part.filename,
            content_type: part.content_type,
            headers: part.headers,
            is_file,
            data,
        };
        header::validate(&prepared.head())?;
        Ok(prepared)
    }

    fn head(&self) -> PartHead<'_> {
        PartHead {
            name: &self.name,
            filename: self.filename.as_deref(),
            content_type: self.content_type.as_deref(),
            headers: &self.headers,
            is_file: self.is_file,
        }
    }

    /// Whether the data is copied next to the header (small in-memory values).
    fn is_inline(&self) -> bool {
        matches!(&self.data, Data::Memory(bytes) if (**bytes).as_ref().len() <= INLINE_MAX)
    }

    fn header_estimate(&self) -> usize {
        self.name.len()
            + self.filename.as_ref().map_or(0, String::len)
            + self.content_type.as_ref().map_or(0, String::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
    }
}

/// From this many paths on, files are measured on two threads: sizing is one `statat(2)` and
/// one brief `openat(2)` per file, and these dominate a form of thousands of files.
const PARALLEL_PATHS: usize = 2048;

/// Measures every path (in form order for errors: the first failing part is reported).
fn measure_files(prepared: &mut [Prepared], paths: usize) -> Result<()> {
    fn measure_all(items: &mut [Prepared]) -> Result<()> {
        let mut measurer = Measurer::default();
        for item in items {
            if let Prepared::Part(part) = item
                && let Data::Unmeasured(path) = &mut part.data
            {
                let path = std::mem::take(path);
                part.data = Data::File(FileData::from_path(&part.name, path, &mut measurer)?);
            }
        }
        Ok(())
    }
    // available_parallelism() reads cgroup files: ask only when it matters.
    if paths < PARALLEL_PATHS
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get) < 2
    {
        return measure_all(prepared);
    }
    // Split where half of the paths lie on each side.
    let mut seen = 0;
    let middle = prepared
        .iter()
        .position(|item| {
            seen += usize::from(
                matches!(item, Prepared::Part(p) if matches!(p.data, Data::Unmeasured(_))),
            );
            seen > paths / 2
        })
        .unwrap_or(prepared.len());
    let (first, second) = prepared.split_at_mut(middle);
    let (a, b) = std::thread::scope(|scope| {
        let other = scope.spawn(|| measure_all(second));
        let mine = measure_all(first);
        (mine, other.join())
    });
    a?;
    match b {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The size of the regular file at `path` (symlinks followed), checked as a file part of a body
/// is when the body is built: not a directory or special file, readable by this process. Reads
/// nothing. `part` names the part in error messages.
pub fn measure_file(part: &str, path: &Path) -> Result<u64> {
    FileData::from_path(part, path.to_path_buf(), &mut Measurer::default()).map(|file| file.len)
}

/// Uses the caller's boundary, refusing it if an in-memory value contains its delimiter; or
/// generates one that no in-memory value contains.
fn choose_boundary(given: Option<&str>, prepared: &[Prepared], text: Text<'_>) -> Result<String> {
    let collision = |boundary: &str| {
        let checker = ValueChecker::new(boundary);
        prepared.iter().find_map(|item| match item {
            Prepared::Field { name, value } => checker
                .find(&text.values[value.clone()])
                .map(|at| (text.names[name.clone()].to_owned(), at)),
            Prepared::Part(part) => match &part.data {
                Data::Memory(bytes) => checker
                    .find((**bytes).as_ref())
                    .map(|at| (part.name.clone(), at)),
                _ => None,
            },
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

/// Renders every header and lays the body out as segments.
fn layout(
    prepared: Vec<Prepared>,
    text: Text<'_>,
    boundary: String,
    options: &FormOptions,
) -> Body {
    let per_part = HEADER_OVERHEAD + boundary.len();
    let estimate = text.names.len()
        + text.values.len()
        + prepared
            .iter()
            .map(|item| match item {
                Prepared::Field { .. } => per_part,
                Prepared::Part(part) => per_part + part.header_estimate(),
            })
            .sum::<usize>()
        + boundary.len()
        + 8;
    let outside = prepared
        .iter()
        .filter(|item| matches!(item, Prepared::Part(part) if !part.is_inline()))
        .count();
    let mut builder = SegmentBuilder::new(estimate, 2 * outside + 1);
    let mut part_starts = Vec::with_capacity(prepared.len() + 1);
    let field = FieldTemplate::new(&boundary, options.escape);
    for item in prepared {
        part_starts.push(builder.offset().unwrap_or(u64::MAX));
        match item {
            Prepared::Field { name, value } => {
                field.render(&mut builder.inline, &text.names[name]);
                builder.inline.extend_from_slice(&text.values[value]);
            }
            Prepared::Part(part) => {
                header::render(&mut builder.inline, &boundary, &part.head(), options.escape);
                let PreparedPart { name, data, .. } = *part;
                match data {
                    Data::Memory(bytes) if (*bytes).as_ref().len() <= INLINE_MAX => {
                        builder.inline.extend_from_slice((*bytes).as_ref());
                    }
                    Data::Memory(bytes) => builder.push(Segment::Shared(bytes)),
                    Data::File(file) => builder.push(Segment::File(file)),
                    Data::Unmeasured(_) => unreachable!("measure_files measured every path"),
                    Data::Reader(reader, len) => builder.push(Segment::Reader(ReaderData {
                        part: name,
                        reader,
                        len,
                        touched: false,
                    })),
                }
            }
        }
        builder.inline.extend_from_slice(b"\r\n");
    }
    part_starts.push(builder.offset().unwrap_or(u64::MAX));
    builder.inline.extend_from_slice(b"--");
    builder.inline.extend_from_slice(boundary.as_bytes());
    builder.inline.extend_from_slice(b"--\r\n");
    let (segments, len) = builder.finish();
    Body::new(
        boundary,
        segments,
        part_starts,
        len,
        !options.skip_stream_boundary_check,
    )
}

/// Accumulates rendered bytes and cuts them into segments around data that is not copied.
struct SegmentBuilder {
    segments: Vec<Segment>,
    inline: Vec<u8>,
    /// Bytes before `inline`, while every segment so far has a known length.
    flushed: Option<u64>,
}

impl SegmentBuilder {
    fn new(capacity: usize, segments: usize) -> SegmentBuilder {
        SegmentBuilder {
            segments: Vec::with_capacity(segments),
            inline: Vec::with_capacity(capacity),
            flushed: Some(0),
        }
    }

    /// The body offset of the next byte.
    fn offset(&self) -> Option<u64> {
        self.flushed.map(|at| at + self.inline.len() as u64)
    }

    fn push(&mut self, segment: Segment) {
        let inline = std::mem::take(&mut self.inline);
        self.append(Segment::Inline(inline));
        self.append(segment);
    }

    fn append(&mut self, segment: Segment) {
        let len = segment.len();
        // Empty files and readers stay: streaming still checks that they did not change.
        if len == Some(0) && matches!(segment, Segment::Inline(_) | Segment::Shared(_)) {
            return;
        }
        self.segments.push(segment);
        self.flushed = match (self.flushed, len) {
            (Some(at), Some(len)) => Some(at + len),
            _ => None,
        };
    }

    fn finish(mut self) -> (Vec<Segment>, Option<u64>) {
        let inline = std::mem::take(&mut self.inline);
        self.append(Segment::Inline(inline));
        (self.segments, self.flushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn body_bytes(form: Form, boundary: &str) -> (Vec<u8>, u64) {
        let options = FormOptions {
            boundary: Some(boundary.to_owned()),
            ..FormOptions::default()
        };
        let mut body = form.build(&options).unwrap();
        let mut out = Vec::new();
        body.read_to_end(&mut out).unwrap();
        (out, body.content_length().unwrap())
    }

    #[test]
    fn fields_render_like_text_parts() {
        let mut fields = Form::new();
        let mut parts = Form::new();
        for (name, value) in [("a", "1"), ("naïve \"q\"", "x\r\ny"), ("", "")] {
            fields.push_field(name, value.as_bytes());
            parts.push(Part::text(name, value));
        }
        let (a, a_len) = body_bytes(fields, "B");
        let (b, b_len) = body_bytes(parts, "B");
        assert_eq!(a, b);
        assert_eq!(a.len() as u64, a_len);
        assert_eq!(a_len, b_len);
    }

    #[test]
    fn a_field_containing_the_delimiter_is_refused() {
        let mut form = Form::new();
        form.push_field("ok", b"fine");
        form.push_field("bad", b"x\r\n--B\r\n");
        let options = FormOptions {
            boundary: Some("B".to_owned()),
            ..FormOptions::default()
        };
        let err = form.build(&options).unwrap_err();
        assert!(matches!(err, Error::BoundaryInData { ref part, offset: 3 } if part == "bad"));
    }
}
