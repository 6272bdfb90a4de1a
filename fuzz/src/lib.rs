//! The round-trip check behind the `roundtrip` fuzz target, usable from a stable `cargo test` as
//! well (see `tests/smoke.rs`).
//!
//! An [`Input`] describes a form (parts with any unicode names and filenames, content types,
//! custom headers, in-memory values, rewindable readers of known length, choppy and failing
//! readers, readers of unknown length, readers that lie about their length) and the options
//! (escape mode, boundary). [`check`] builds the body and then:
//!
//! - a build error must be one the input explains (an invalid boundary, an unsafe header, a
//!   delimiter inside an in-memory value), and an input with none of those must build;
//! - the body is read with the input's read sizes; a streaming error must be one the input
//!   explains (a reader that lies about its length, a delimiter in reader data, a failing reader),
//!   and an input with none of those must stream to the end;
//! - the number of bytes produced equals `content_length()` when it is known;
//! - seeks to the input's offsets give exactly the same bytes as the first pass;
//! - `multer` (the parser behind axum) parses the body back into the same parts: same data bytes,
//!   exactly the expected header lines (nothing injected), the same content type, and the same
//!   name and filename wherever the escape mode is reversible for that parser;
//! - poster-core's receiving parser, fed uneven chunks, finds the same parts and data.

use std::collections::BTreeSet;
use std::io::{self, Cursor, Read, Seek, SeekFrom};

use arbitrary::{Arbitrary, Result as AResult, Unstructured};
use poster_core::{Body, Error, EscapeMode, Form, FormOptions, Part, PartReader, ReadOnce, Source};

/// Pieces that escaping rules and parsers trip over.
const TRICKY: &[&str] = &[
    "\"",
    "\\",
    "\r",
    "\n",
    "\r\n",
    "\r\n\r\n",
    "\0",
    "\t",
    "\x01",
    "\x1b",
    "\x1f",
    "\x7f",
    "%",
    "%22",
    "%0A",
    ";",
    " ",
    "'",
    "=",
    "name=",
    "filename=",
    "; filename=\"x\"",
    "\r\nX-Injected: 1",
    "é",
    "€",
    "\u{1F600}",
    "\u{feff}",
    "\u{2028}",
    "\u{80}",
    "--",
    "&#233;",
    "=?utf-8?b?",
    "/",
    "..",
    "C:\\x",
];

/// A string built from tricky pieces, single characters of any kind and arbitrary strings.
#[derive(Debug, Clone)]
pub struct Text(pub String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> AResult<Self> {
        let mut s = String::new();
        let pieces = u.int_in_range(0..=10)?;
        for _ in 0..pieces {
            match u.int_in_range(0..=3)? {
                0 | 1 => s.push_str(u.choose(TRICKY)?),
                2 => s.push(u.arbitrary::<char>()?),
                _ => {
                    let len = u.int_in_range(0..=16)?;
                    for _ in 0..len {
                        s.push(u.arbitrary::<char>()?);
                    }
                }
            }
        }
        Ok(Text(s))
    }
}

const CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "application/octet-stream",
    "image/png",
    "text/html; charset=\"utf-8\"",
    "",
    "  spaced/type  ",
    "t\u{e9}xt/ünicode",
];

/// A part's declared content type.
#[derive(Debug, Arbitrary)]
pub enum ContentType {
    /// A usual one.
    Common(u8),
    /// Anything, including control characters (refused at build).
    Any(Text),
}

impl ContentType {
    fn value(&self) -> String {
        match self {
            ContentType::Common(i) => CONTENT_TYPES[usize::from(*i) % CONTENT_TYPES.len()].into(),
            ContentType::Any(t) => t.0.clone(),
        }
    }
}

const HEADER_NAMES: &[&str] = &[
    "X-Checksum",
    "Content-Type",
    "content-type",
    "Content-Disposition",
    "Content-Length",
    "X-A",
    "x-a",
    "X A",
    "",
    "X:Y",
    "Ünicode",
];

/// A custom part header's name.
#[derive(Debug, Arbitrary)]
pub enum HeaderName {
    /// A usual or a notable one.
    Common(u8),
    /// Anything.
    Any(Text),
}

impl HeaderName {
    fn value(&self) -> String {
        match self {
            HeaderName::Common(i) => HEADER_NAMES[usize::from(*i) % HEADER_NAMES.len()].into(),
            HeaderName::Any(t) => t.0.clone(),
        }
    }
}

/// Where a part's data comes from.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Kind {
    /// `Form::push_field` (names and values in the form's shared buffers).
    Field,
    /// `Part::bytes`.
    Bytes,
    /// `Part::text` (the data made valid UTF-8 first).
    Text,
    /// `Rewindable::new(Cursor)` of exactly its length.
    Rewindable,
    /// A rewindable reader that returns at most `max + 1` bytes per call and `Interrupted` on
    /// every `every`-th call.
    Choppy {
        /// Largest read minus one.
        max: u8,
        /// Period of `Interrupted` errors (0: never).
        every: u8,
    },
    /// A rewindable reader whose declared length is off by `delta` (0: exact).
    WrongLen {
        /// Declared minus actual length.
        delta: i8,
    },
    /// A `ReadOnce` reader of unknown length: the body has no Content-Length.
    Unknown,
    /// A rewindable reader that fails with an I/O error once it reaches byte `after`.
    Failing {
        /// Where the failure happens.
        after: u16,
    },
}

/// A part's data.
#[derive(Debug, Arbitrary)]
pub struct DataSpec {
    bytes: Vec<u8>,
    /// Repeat the bytes past 64 KiB, so the value is sent from its own buffer, not copied.
    big: bool,
    /// Put the delimiter of the given boundary at this offset (modulo the length + 1).
    inject: Option<u16>,
}

/// One part.
#[derive(Debug, Arbitrary)]
pub struct PartSpec {
    name: Text,
    filename: Option<Text>,
    content_type: Option<ContentType>,
    headers: Vec<(HeaderName, Text)>,
    data: DataSpec,
    kind: Kind,
}

const BOUNDARIES: &[&str] = &[
    "B",
    "XYZXYZXYZ",
    "a b",
    "'()+_,-./:=?",
    "----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "0123456789012345678901234567890123456789012345678901234567890123456789",
    "-",
    "--",
];

/// How the boundary is chosen.
#[derive(Debug, Arbitrary)]
pub enum BoundaryChoice {
    /// Generated by the encoder.
    Generated,
    /// A valid one of various shapes.
    Fixed(u8),
    /// Anything (mostly invalid).
    Any(String),
    /// Cut out of a part's data, to provoke collisions.
    FromData {
        /// Which part.
        part: u8,
        /// Where in its data.
        start: u16,
        /// How long.
        len: u8,
    },
}

/// The whole fuzz input: a form, options, and how to read the body.
#[derive(Debug, Arbitrary)]
pub struct Input {
    parts: Vec<PartSpec>,
    escape: u8,
    boundary: BoundaryChoice,
    /// Read sizes, used in turn (each is taken modulo 70,000, plus 1).
    reads: Vec<u16>,
    /// Offsets to seek to after the first pass (modulo the length + 1).
    seeks: Vec<u32>,
}

/// A reader over in-memory data that hands out small pieces and is sometimes interrupted.
struct Choppy {
    data: Cursor<Vec<u8>>,
    max: usize,
    every: u32,
    calls: u32,
}

impl PartReader for Choppy {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.every > 0 && self.calls.is_multiple_of(self.every) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = buf.len().min(self.max);
        self.data.read(&mut buf[..n])
    }

    fn rewind(&mut self) -> io::Result<()> {
        self.data.set_position(0);
        Ok(())
    }
}

/// A reader that fails once it reaches a given byte.
struct Failing {
    data: Cursor<Vec<u8>>,
    after: u64,
}

impl PartReader for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let pos = self.data.position();
        if pos >= self.after && pos < self.data.get_ref().len() as u64 {
            return Err(io::Error::other("injected read failure"));
        }
        let room = (self.after.max(pos + 1) - pos).min(buf.len() as u64) as usize;
        self.data.read(&mut buf[..room])
    }

    fn rewind(&mut self) -> io::Result<()> {
        self.data.set_position(0);
        Ok(())
    }
}

fn mode_of(byte: u8) -> EscapeMode {
    match byte % 3 {
        0 => EscapeMode::Quoted,
        1 => EscapeMode::Html5,
        _ => EscapeMode::Poster,
    }
}

/// RFC 2046 §5.1.1, written independently of the encoder.
fn boundary_is_valid(b: &str) -> bool {
    let bchar = |c: u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c);
    (1..=70).contains(&b.len()) && b.bytes().all(bchar) && !b.ends_with(' ')
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether part data holds the multipart delimiter: `CRLF--B` anywhere, or `--B` at its start
/// (the part header before it ends with CRLF).
fn has_delimiter(data: &[u8], boundary: &str) -> bool {
    let dashed = [b"--", boundary.as_bytes()].concat();
    data.starts_with(&dashed) || find(data, &[b"\r\n", dashed.as_slice()].concat())
}

/// Whether an escape mode leaves a byte in a name or filename that httparse refuses in a header
/// value (C0 controls other than TAB, and DEL). Such bodies are well framed but a strict parser
/// rejects them, so the multer comparison is skipped for them.
fn leaves_raw_control(text: &str, mode: EscapeMode) -> bool {
    match mode {
        // Percent-escapes C0 controls but leaves DEL as it is.
        EscapeMode::Quoted => text.contains('\x7f'),
        // Escapes only `"`, CR and LF (the WHATWG rule).
        EscapeMode::Html5 => text.bytes().any(|b| is_ctl(b) && b != b'\r' && b != b'\n'),
        // Base64 encoded-words for names, `\xNN` for filenames.
        EscapeMode::Poster => false,
    }
}

/// What multer 3 returns for a name sent in `mode`, when it returns the original: multer finds
/// the closing quote as the first `"` not preceded by `\`, turns `\"` back into `"` and keeps
/// every other byte (`\\` stays doubled, percent-escapes stay encoded).
fn multer_reversible_name(name: &str, mode: EscapeMode) -> bool {
    let plain_ascii = name.bytes().all(|b| (0x20..0x7f).contains(&b));
    !name.contains('\\')
        && match mode {
            EscapeMode::Quoted => !name.bytes().any(is_ctl),
            EscapeMode::Html5 => !name.bytes().any(|b| is_ctl(b) || b == b'"'),
            EscapeMode::Poster => plain_ascii,
        }
}

fn multer_reversible_filename(filename: &str, mode: EscapeMode) -> bool {
    match mode {
        EscapeMode::Poster => {
            filename.bytes().all(|b| (0x20..0x7f).contains(&b)) && !filename.contains(['\\', '\''])
        }
        _ => multer_reversible_name(filename, mode),
    }
}

/// What the test expects of one part after building.
struct Expect {
    name: String,
    filename: Option<String>,
    /// The part's data.
    data: Vec<u8>,
    /// The header names the part must carry, lowercased.
    header_names: BTreeSet<String>,
    content_type: String,
}

/// Everything [`check`] derives from the input before building.
struct Plan {
    form: Form,
    options: FormOptions,
    mode: EscapeMode,
    expects: Vec<Expect>,
    /// Build errors this input can explain.
    bad_boundary: bool,
    bad_header: bool,
    value_collision: bool,
    /// Streaming errors this input can explain.
    wrong_len: bool,
    stream_collision: bool,
    failing: bool,
    /// A name or filename a strict parser refuses by design of the escape mode.
    raw_control: bool,
    has_unknown: bool,
}

fn build_data(spec: &DataSpec, boundary: Option<&str>) -> Vec<u8> {
    let mut data = spec.bytes.clone();
    if spec.big && !data.is_empty() {
        let times = 70_000 / data.len() + 1;
        data = data.repeat(times);
    }
    if let (Some(at), Some(b)) = (spec.inject, boundary) {
        let at = usize::from(at) % (data.len() + 1);
        let delim = if at == 0 {
            format!("--{b}")
        } else {
            format!("\r\n--{b}")
        };
        data.splice(at..at, delim.bytes());
    }
    data
}

fn choose_boundary(input: &Input) -> Option<String> {
    match &input.boundary {
        BoundaryChoice::Generated => None,
        BoundaryChoice::Fixed(i) => Some(BOUNDARIES[usize::from(*i) % BOUNDARIES.len()].into()),
        BoundaryChoice::Any(s) => Some(s.clone()),
        BoundaryChoice::FromData { part, start, len } => {
            if input.parts.is_empty() {
                return Some("B".into());
            }
            let bytes = &input.parts[usize::from(*part) % input.parts.len()]
                .data
                .bytes;
            let start = usize::from(*start).min(bytes.len());
            let end = (start + usize::from(*len).max(1)).min(bytes.len());
            Some(String::from_utf8_lossy(&bytes[start..end]).into_owned())
        }
    }
}

fn plan(input: &Input) -> Plan {
    let mode = mode_of(input.escape);
    let boundary = choose_boundary(input);
    let bad_boundary = boundary.as_deref().is_some_and(|b| !boundary_is_valid(b));
    let given = boundary.as_deref().filter(|b| boundary_is_valid(b));
    let mut plan = Plan {
        form: Form::new(),
        options: FormOptions {
            boundary: boundary.clone(),
            escape: mode,
            skip_stream_boundary_check: false,
        },
        mode,
        expects: Vec::new(),
        bad_boundary,
        bad_header: false,
        value_collision: false,
        wrong_len: false,
        stream_collision: false,
        failing: false,
        raw_control: false,
        has_unknown: false,
    };
    for spec in input.parts.iter().take(8) {
        let mut data = build_data(&spec.data, given);
        let name = spec.name.0.clone();
        let collides = given.is_some_and(|b| has_delimiter(&data, b));
        let mut part = match spec.kind {
            Kind::Field => {
                // Fields carry no filename, type or headers: only a name and a value.
                plan.value_collision |= collides;
                plan.raw_control |= leaves_raw_control(&name, mode);
                plan.form.push_field(&name, &data);
                let mut header_names = BTreeSet::new();
                header_names.insert("content-disposition".to_owned());
                header_names.insert("content-type".to_owned());
                plan.expects.push(Expect {
                    name,
                    filename: None,
                    data,
                    header_names,
                    content_type: "text/plain; charset=utf-8".into(),
                });
                continue;
            }
            Kind::Bytes => {
                plan.value_collision |= collides;
                Part::bytes(name.clone(), data.clone())
            }
            Kind::Text => {
                data = String::from_utf8_lossy(&data).into_owned().into_bytes();
                plan.value_collision |= given.is_some_and(|b| has_delimiter(&data, b));
                Part::text(
                    name.clone(),
                    String::from_utf8(data.clone()).expect("utf-8"),
                )
            }
            Kind::Rewindable => {
                plan.stream_collision |= collides;
                let reader = poster_core::Rewindable::new(Cursor::new(data.clone()))
                    .expect("a cursor knows its position");
                let len = Some(data.len() as u64);
                Part::new(
                    name.clone(),
                    Source::Reader {
                        reader: Box::new(reader),
                        len,
                    },
                )
            }
            Kind::Choppy { max, every } => {
                plan.stream_collision |= collides;
                let reader = Choppy {
                    data: Cursor::new(data.clone()),
                    max: usize::from(max) + 1,
                    // Every call interrupted would never progress.
                    every: if every < 2 { 0 } else { u32::from(every) },
                    calls: 0,
                };
                let len = Some(data.len() as u64);
                Part::new(
                    name.clone(),
                    Source::Reader {
                        reader: Box::new(reader),
                        len,
                    },
                )
            }
            Kind::WrongLen { delta } => {
                plan.stream_collision |= collides;
                let declared = (data.len() as i64 + i64::from(delta)).max(0) as u64;
                plan.wrong_len |= declared != data.len() as u64;
                let reader = poster_core::Rewindable::new(Cursor::new(data.clone()))
                    .expect("a cursor knows its position");
                Part::new(
                    name.clone(),
                    Source::Reader {
                        reader: Box::new(reader),
                        len: Some(declared),
                    },
                )
            }
            Kind::Unknown => {
                plan.stream_collision |= collides;
                plan.has_unknown = true;
                let reader = ReadOnce(Cursor::new(data.clone()));
                Part::new(
                    name.clone(),
                    Source::Reader {
                        reader: Box::new(reader),
                        len: None,
                    },
                )
            }
            Kind::Failing { after } => {
                plan.stream_collision |= collides;
                plan.failing |= usize::from(after) < data.len();
                let reader = Failing {
                    data: Cursor::new(data.clone()),
                    after: u64::from(after),
                };
                let len = Some(data.len() as u64);
                Part::new(
                    name.clone(),
                    Source::Reader {
                        reader: Box::new(reader),
                        len,
                    },
                )
            }
        };
        let is_file = !matches!(spec.kind, Kind::Bytes | Kind::Text);
        plan.raw_control |= leaves_raw_control(&name, mode);
        let mut filename = None;
        if let Some(f) = &spec.filename {
            part = part.filename(f.0.clone());
            plan.raw_control |= leaves_raw_control(&f.0, mode);
            // poster mode omits an empty filename, as poster did.
            if !(mode == EscapeMode::Poster && f.0.is_empty()) {
                filename = Some(f.0.clone());
            }
        }
        let mut declared_type = None;
        if let Some(ct) = &spec.content_type {
            let value = ct.value();
            plan.bad_header |= value.bytes().any(is_ctl);
            part = part.content_type(value.clone());
            declared_type = Some(value);
        }
        let mut header_names = BTreeSet::new();
        header_names.insert("content-disposition".to_owned());
        header_names.insert("content-type".to_owned());
        let mut custom_type = None;
        for (key, value) in spec.headers.iter().take(6) {
            let key = key.value();
            let value = value.0.clone();
            plan.bad_header |= key.is_empty()
                || !key.bytes().all(is_tchar)
                || key.eq_ignore_ascii_case("content-disposition")
                || value.bytes().any(is_ctl);
            if key.eq_ignore_ascii_case("content-type") && custom_type.is_none() {
                custom_type = Some(value.clone());
            }
            header_names.insert(key.to_ascii_lowercase());
            part = part.header(key, value);
        }
        let content_type = custom_type
            .or(declared_type.filter(|t| !t.is_empty()))
            .unwrap_or_else(|| {
                if is_file && mode != EscapeMode::Poster {
                    "application/octet-stream".into()
                } else {
                    "text/plain; charset=utf-8".into()
                }
            });
        plan.form.push(part);
        plan.expects.push(Expect {
            name,
            filename,
            data,
            header_names,
            content_type,
        });
    }
    plan
}

fn read_size(reads: &[u16], i: usize) -> usize {
    if reads.is_empty() {
        return 4096;
    }
    let r = usize::from(reads[i % reads.len()]);
    // Mostly small reads, sometimes reads past the 64 KiB and 256 KiB internal sizes.
    if r > 0xff00 { 300_000 } else { r % 5000 + 1 }
}

/// Reads the body to its end with the input's read sizes.
fn read_to_end(body: &mut Body, reads: &[u16], start: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for i in start.. {
        let size = read_size(reads, i);
        buf.resize(size, 0);
        let n = body.read(&mut buf)?;
        if n == 0 {
            assert!(body.is_finished(), "read returned 0 before the end");
            return Ok(out);
        }
        assert!(n <= size);
        out.extend_from_slice(&buf[..n]);
    }
    unreachable!()
}

fn trim_ws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses `body` with multer and compares every part with what was sent.
fn parse_back(body: &[u8], content_type: &str, boundary: &str, plan: &Plan) {
    let parsed = multer::parse_boundary(content_type).expect("multer reads our Content-Type");
    assert_eq!(
        parsed, boundary,
        "boundary parsed back from {content_type:?}"
    );
    let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> = body
        .chunks(777)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let mut multipart = multer::Multipart::new(futures::stream::iter(chunks), boundary.to_owned());
    futures::executor::block_on(async {
        let mut index = 0;
        while let Some(field) = multipart
            .next_field()
            .await
            .unwrap_or_else(|e| panic!("multer rejected part {index}: {e}"))
        {
            let expect = plan
                .expects
                .get(index)
                .unwrap_or_else(|| panic!("multer found an extra part {index}"));
            let names: BTreeSet<String> = field
                .headers()
                .keys()
                .map(|k| k.as_str().to_owned())
                .collect();
            assert_eq!(names, expect.header_names, "part {index}: header lines");
            let ct = field
                .headers()
                .get("content-type")
                .expect("a content type")
                .as_bytes();
            assert_eq!(
                ct,
                trim_ws(&expect.content_type).as_bytes(),
                "part {index}: content type"
            );
            if multer_reversible_name(&expect.name, plan.mode) {
                assert_eq!(
                    field.name(),
                    Some(expect.name.as_str()),
                    "part {index}: name"
                );
            }
            let name_hides_filename = expect.name.contains("filename");
            match &expect.filename {
                Some(f) if multer_reversible_filename(f, plan.mode) && !name_hides_filename => {
                    assert_eq!(
                        field.file_name(),
                        Some(f.as_str()),
                        "part {index}: filename"
                    );
                }
                None if !name_hides_filename => {
                    assert_eq!(field.file_name(), None, "part {index}: no filename");
                }
                _ => {}
            }
            let data = field.bytes().await.expect("part data");
            assert!(data == expect.data, "part {index}: data differs");
            index += 1;
        }
        assert_eq!(index, plan.expects.len(), "number of parts");
    });
}

/// Parses `body` with poster-core's own receiving parser, fed in chunks of uneven sizes, and
/// compares every part with what was sent (the same checks as multer's but the names, which
/// the server decodes in Python).
fn receive_back(body: &[u8], content_type: &str, boundary: &str, plan: &Plan) {
    use poster_core::receive::{FormEvent, FormLimits, FormParser, form_boundary};

    let found = form_boundary(content_type.as_bytes()).expect("a boundary in our Content-Type");
    assert_eq!(
        &*found,
        boundary.as_bytes(),
        "boundary from {content_type:?}"
    );
    let limits = FormLimits {
        max_parts: usize::MAX,
        max_part_header: usize::MAX,
    };
    let mut parser = FormParser::new(boundary.as_bytes(), limits).expect("our boundary parses");
    // (header names, content type, data) of each part.
    let mut parts: Vec<(BTreeSet<String>, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut ended = false;
    let mut sink = |event: FormEvent<'_>| match event {
        FormEvent::PartStart(headers) => {
            let names = headers
                .iter()
                .map(|(name, _)| String::from_utf8_lossy(name).to_ascii_lowercase())
                .collect();
            let content_type = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(b"content-type"))
                .map(|(_, value)| value.to_vec())
                .expect("a content type");
            parts.push((names, content_type, Vec::new()));
        }
        FormEvent::Data(data) => parts
            .last_mut()
            .expect("data in a part")
            .2
            .extend_from_slice(data),
        FormEvent::PartEnd => {}
        FormEvent::End => ended = true,
    };
    let mut start = 0;
    for size in (1..).map(|i: usize| 1 + i * 7919 % 1500) {
        let end = (start + size).min(body.len());
        parser
            .feed(&body[start..end], &mut sink)
            .unwrap_or_else(|e| panic!("the receiving parser rejected the body: {e}"));
        start = end;
        if start == body.len() {
            break;
        }
    }
    parser
        .finish()
        .expect("the body ends with its close delimiter");
    assert!(ended, "the close delimiter was reported");
    assert_eq!(parts.len(), plan.expects.len(), "number of parts received");
    for (index, ((names, content_type, data), expect)) in
        parts.iter().zip(&plan.expects).enumerate()
    {
        assert_eq!(
            names, &expect.header_names,
            "part {index}: header lines received"
        );
        assert_eq!(
            content_type.as_slice(),
            trim_ws(&expect.content_type).as_bytes(),
            "part {index}: content type received"
        );
        assert!(*data == expect.data, "part {index}: data received differs");
    }
}

/// How far [`check`] got with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The form was refused when building, for a reason the input explains.
    BuildError,
    /// Streaming stopped with an error the input explains.
    StreamError,
    /// Streamed and seeked correctly; not parsed back (a name the escape mode leaves with a
    /// control character that strict parsers refuse).
    Streamed,
    /// Streamed, seeked and parsed back by multer into the same parts.
    RoundTrip,
}

/// The round-trip check; panics on any finding.
pub fn check(input: &Input) -> Outcome {
    let mut plan = plan(input);
    let form = std::mem::take(&mut plan.form);
    let options = plan.options.clone();
    let mut body = match form.build(&options) {
        Ok(body) => {
            assert!(
                !plan.bad_boundary,
                "an invalid boundary was accepted: {options:?}"
            );
            assert!(!plan.bad_header, "an unsafe header was accepted");
            assert!(
                !plan.value_collision,
                "a value containing the delimiter was accepted"
            );
            body
        }
        Err(err) => {
            let explained = match &err {
                Error::InvalidBoundary { .. } => plan.bad_boundary,
                Error::InvalidHeader { .. } => plan.bad_header,
                Error::BoundaryInData { .. } => plan.value_collision,
                _ => false,
            };
            assert!(explained, "unexpected build error: {err}");
            assert!(!err.to_string().is_empty());
            return Outcome::BuildError;
        }
    };
    let boundary = body.boundary().to_owned();
    assert!(boundary_is_valid(&boundary), "boundary {boundary:?}");
    let content_type = body.content_type();
    let length = body.content_length();
    assert_eq!(
        length.is_none(),
        plan.has_unknown,
        "length known iff no unsized reader"
    );

    let full = match read_to_end(&mut body, &input.reads, 0) {
        Ok(full) => {
            assert!(
                !plan.wrong_len,
                "a reader that lied about its length went unnoticed"
            );
            assert!(!plan.failing, "a failing reader went unnoticed");
            assert!(
                !plan.stream_collision,
                "a delimiter in reader data went unnoticed"
            );
            full
        }
        Err(err) => {
            let inner = err.get_ref().map(ToString::to_string).unwrap_or_default();
            let explained = (plan.wrong_len && inner.contains("changed size"))
                || (plan.stream_collision && inner.contains("boundary found"))
                || (plan.failing && err.to_string().contains("injected read failure"));
            assert!(
                explained,
                "unexpected streaming error: {err} ({:?})",
                err.kind()
            );
            // The stream must stay usable: a read after an error fails again or goes on, but
            // never panics.
            let mut scratch = [0u8; 64];
            let _ = body.read(&mut scratch);
            return Outcome::StreamError;
        }
    };
    if let Some(length) = length {
        assert_eq!(
            full.len() as u64,
            length,
            "Content-Length differs from the bytes"
        );
    }
    assert_eq!(body.position(), full.len() as u64);
    assert!(full.ends_with(format!("--{boundary}--\r\n").as_bytes()));

    // Seeks: every offset gives the same bytes as the first pass.
    if length.is_some() {
        for (k, &target) in input.seeks.iter().take(3).enumerate() {
            let at = u64::from(target) % (full.len() as u64 + 1);
            body.seek(at).expect("seek within the body");
            assert_eq!(body.position(), at);
            let rest = read_to_end(&mut body, &input.reads, k + 1).expect("re-read after seek");
            assert!(
                rest == full[at as usize..],
                "bytes after a seek to {at} differ"
            );
        }
        let len = full.len() as u64;
        assert!(Seek::seek(&mut body, SeekFrom::End(1)).is_err());
        assert!(Seek::seek(&mut body, SeekFrom::Current(-(len as i64) - 1)).is_err());
        assert!(body.seek(len + 1).is_err());
        assert_eq!(
            Seek::seek(&mut body, SeekFrom::End(0)).expect("seek to end"),
            len
        );
    } else {
        // Unsized readers cannot rewind: going back fails cleanly, or works when it can.
        let _ = body.seek(0);
        let _ = body.seek(1);
    }

    if plan.raw_control {
        return Outcome::Streamed;
    }
    parse_back(&full, &content_type, &boundary, &plan);
    receive_back(&full, &content_type, &boundary, &plan);
    Outcome::RoundTrip
}
