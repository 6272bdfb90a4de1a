//! Property tests over arbitrary forms: the Content-Length matches the bytes, every seek offset
//! gives the right suffix, buffer sizes do not matter, and no header line carries a raw CR or LF.

mod common;

use std::fs::File;
use std::io::Read;
use std::sync::Arc;

use common::{TempDir, fill_all, find, reader_source};
use poster_core::{Body, EscapeMode, Form, FormOptions, Part, Source};
use proptest::prelude::*;
use proptest::sample::select;

/// The bytes of `alphabet` data: CR, LF, dashes and boundary letters, for near misses.
const ALPHABET: &[u8] = b"\r\n-XYZab ";

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An in-memory value (inline up to 64 KiB, a shared segment above).
    Bytes,
    /// A file named by path.
    Path,
    /// An open file, from an offset; `exact` passes the length explicitly.
    OpenFile { offset: u16, exact: bool },
    /// A rewindable reader of known length.
    Reader,
}

#[derive(Debug, Clone)]
struct PartSpec {
    name: String,
    filename: Option<String>,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    kind: Kind,
    size: usize,
    seed: u64,
    /// Data from a small alphabet of CR, LF, '-' and boundary letters (near misses), instead of
    /// uniform random bytes.
    alphabet: bool,
}

impl PartSpec {
    fn is_file(&self) -> bool {
        !matches!(self.kind, Kind::Bytes)
    }

    fn data(&self) -> Vec<u8> {
        let mut state = self.seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..self.size)
            .map(|_| {
                let r = next();
                if self.alphabet {
                    ALPHABET[(r % ALPHABET.len() as u64) as usize]
                } else {
                    (r >> 24) as u8
                }
            })
            .collect()
    }
}

fn text() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        6 => select(vec![
            'a', 'b', 'Z', '0', ' ', '"', '\\', '\'', '\r', '\n', '\t', '\0', '\x1b', '\x7f',
            '%', '-', ';', '=', '&', '#', '\u{e9}', '\u{2603}', '\u{1f600}',
        ]),
        1 => any::<char>(),
    ];
    prop::collection::vec(chars, 0..14).prop_map(|v| v.into_iter().collect())
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..2000,
        1 => Just(0usize),
        1 => 65_530usize..65_542,
        2 => 65_542usize..150_000,
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Bytes),
        2 => Just(Kind::Path),
        1 => (0u16..3000, any::<bool>()).prop_map(|(offset, exact)| Kind::OpenFile { offset, exact }),
        2 => Just(Kind::Reader),
    ]
}

fn part_spec() -> impl Strategy<Value = PartSpec> {
    (
        text(),
        prop::option::of(text()),
        prop::option::of(select(vec![
            "image/png",
            "",
            "text/html; charset=latin-1",
            "application/x-thing\t; q=1",
        ])),
        prop::collection::vec(
            select(vec![
                ("X-Checksum", "abc\tdef"),
                ("X-Empty", ""),
                ("Content-Type", "text/csv"),
                ("X-Value", "caf\u{e9} \u{2603}"),
            ]),
            0..3,
        ),
        kind(),
        size(),
        any::<u64>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(name, filename, content_type, headers, kind, size, seed, alphabet)| PartSpec {
                name,
                filename,
                content_type,
                headers,
                kind,
                size,
                seed,
                alphabet,
            },
        )
}

#[derive(Debug, Clone)]
struct Case {
    parts: Vec<PartSpec>,
    boundary: Option<&'static str>,
    escape: EscapeMode,
    skip_check: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(part_spec(), 0..6),
        prop::option::of(select(vec![
            "XYZXYZXYZ",
            "a b'()+_,-./:=?z",
            "0123456789012345678901234567890123456789012345678901234567890123456789",
        ])),
        select(vec![
            EscapeMode::Quoted,
            EscapeMode::Html5,
            EscapeMode::Poster,
        ]),
        any::<bool>(),
    )
        .prop_map(|(parts, boundary, escape, skip_check)| Case {
            parts,
            boundary,
            escape,
            skip_check,
        })
}

/// Builds the body of a case; files go into `dir`. Returns the body and each part's data.
fn build(case: &Case, dir: &TempDir) -> (Body, Vec<Vec<u8>>) {
    build_with(case, dir, case.boundary)
}

/// As [`build`], with the given boundary instead of the case's.
fn build_with(case: &Case, dir: &TempDir, boundary: Option<&str>) -> (Body, Vec<Vec<u8>>) {
    let mut form = Form::new();
    let mut datas = Vec::new();
    for (i, spec) in case.parts.iter().enumerate() {
        let data = spec.data();
        let source = match spec.kind {
            Kind::Bytes => Source::bytes(data.clone()),
            Kind::Path => Source::Path(dir.write(&format!("part{i}"), &data)),
            Kind::OpenFile { offset, exact } => {
                let mut contents = vec![b'#'; usize::from(offset)];
                contents.extend_from_slice(&data);
                let path = dir.write(&format!("part{i}"), &contents);
                Source::File {
                    file: Arc::new(File::open(path).unwrap()),
                    offset: u64::from(offset),
                    len: exact.then_some(data.len() as u64),
                }
            }
            Kind::Reader => reader_source(&data),
        };
        let mut part = Part::new(spec.name.clone(), source);
        if let Some(filename) = &spec.filename {
            part = part.filename(filename.clone());
        }
        if let Some(content_type) = spec.content_type {
            part = part.content_type(content_type);
        }
        for (name, value) in &spec.headers {
            part = part.header(*name, *value);
        }
        form.push(part);
        datas.push(data);
    }
    let options = FormOptions {
        boundary: boundary.map(str::to_owned),
        escape: case.escape,
        skip_stream_boundary_check: case.skip_check,
    };
    (form.build(&options).expect("a valid form builds"), datas)
}

/// The content of a quoted-string parameter at the start of `s` (after the opening quote):
/// returns the rest after the closing quote. In `html5` mode backslash is an ordinary character.
fn skip_quoted(s: &[u8], mode: EscapeMode) -> Result<&[u8], String> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if mode != EscapeMode::Html5 => i += 2,
            b'"' => return Ok(&s[i + 1..]),
            _ => i += 1,
        }
    }
    Err(format!(
        "unterminated quoted string in {:?}",
        String::from_utf8_lossy(s)
    ))
}

/// Parses the body back into parts and checks every header block against the spec.
fn check_structure(
    body: &[u8],
    boundary: &str,
    case: &Case,
    datas: &[Vec<u8>],
) -> Result<(), String> {
    let mut delimiter = b"\r\n--".to_vec();
    delimiter.extend_from_slice(boundary.as_bytes());
    let mut full = b"\r\n".to_vec();
    full.extend_from_slice(body);
    let mut pieces = Vec::new();
    let mut rest = &full[..];
    while let Some(at) = find(rest, &delimiter) {
        pieces.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    pieces.push(rest);
    if !pieces[0].is_empty() {
        return Err("body does not start with the delimiter".into());
    }
    if pieces.last() != Some(&&b"--\r\n"[..]) {
        return Err("body does not end with the closing delimiter".into());
    }
    let parts = &pieces[1..pieces.len() - 1];
    if parts.len() != case.parts.len() {
        return Err(format!(
            "{} parts parsed, {} built",
            parts.len(),
            case.parts.len()
        ));
    }
    for (i, ((piece, spec), data)) in parts.iter().zip(&case.parts).zip(datas).enumerate() {
        let piece = piece
            .strip_prefix(b"\r\n")
            .ok_or(format!("part {i}: no CRLF after the delimiter"))?;
        let end = find(piece, b"\r\n\r\n").ok_or(format!("part {i}: no end of headers"))?;
        let header = &piece[..end];
        if &piece[end + 4..] != data.as_slice() {
            return Err(format!("part {i}: data differs"));
        }
        check_header(i, header, spec, case.escape)?;
    }
    Ok(())
}

/// Checks one part's header block (without its final CRLF CRLF) against its spec.
fn check_header(
    i: usize,
    header: &[u8],
    spec: &PartSpec,
    escape: EscapeMode,
) -> Result<(), String> {
    let lines: Vec<&[u8]> = header.split(|&b| b == b'\n').collect();
    let custom: Vec<_> = spec
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-type"))
        .collect();
    if lines.len() != 2 + custom.len() {
        return Err(format!(
            "part {i}: {} header lines, expected {}: {:?}",
            lines.len(),
            2 + custom.len(),
            String::from_utf8_lossy(header)
        ));
    }
    // Every line but the last ends with the CR of its CRLF; no other CR or LF anywhere.
    let mut clean = Vec::with_capacity(lines.len());
    for (j, line) in lines.iter().enumerate() {
        let line = if j + 1 < lines.len() {
            line.strip_suffix(b"\r")
                .ok_or(format!("part {i}: bare LF in header"))?
        } else {
            line
        };
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Err(format!("part {i}: raw CR in header line {j}"));
        }
        if escape != EscapeMode::Html5 && j == 0 && line.iter().any(|&b| b < 0x20 && b != b'\t') {
            return Err(format!(
                "part {i}: control character in {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        clean.push(line);
    }
    let lines = clean;
    let disposition = lines[0];
    let after_name = skip_quoted(
        disposition
            .strip_prefix(b"Content-Disposition: form-data; name=\"")
            .ok_or(format!("part {i}: bad disposition start"))?,
        escape,
    )?;
    let has_filename = spec
        .filename
        .as_ref()
        .is_some_and(|f| escape != EscapeMode::Poster || !f.is_empty());
    if has_filename {
        let after = skip_quoted(
            after_name
                .strip_prefix(b"; filename=\"")
                .ok_or(format!("part {i}: filename expected"))?,
            escape,
        )?;
        if !after.is_empty() {
            return Err(format!("part {i}: junk after filename"));
        }
    } else if !after_name.is_empty() {
        return Err(format!("part {i}: junk after name"));
    }
    let content_type = spec
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| *v)
        .or(spec.content_type.filter(|t| !t.is_empty()))
        .unwrap_or(if spec.is_file() && escape != EscapeMode::Poster {
            "application/octet-stream"
        } else {
            "text/plain; charset=utf-8"
        });
    let want = format!("Content-Type: {content_type}");
    if lines[1] != want.as_bytes() {
        return Err(format!(
            "part {i}: {:?} instead of {want:?}",
            String::from_utf8_lossy(lines[1])
        ));
    }
    for (k, (name, value)) in custom.iter().enumerate() {
        let want = format!("{name}: {value}");
        let got = lines[2 + k];
        if got != want.as_bytes() {
            return Err(format!(
                "part {i}: custom header {k} is {:?}",
                String::from_utf8_lossy(got)
            ));
        }
    }
    Ok(())
}

fn read_to_end(body: &mut Body) -> Vec<u8> {
    let mut out = Vec::new();
    body.read_to_end(&mut out).expect("read");
    out
}

/// 64 cases keep `cargo test` quick; set `PROPTEST_CASES` to run more.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_some() {
        default
    } else {
        ProptestConfig {
            cases: 64,
            ..default
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// (a) the length is exact, (d) the structure parses back with clean header lines, and the
    /// part offsets point at the delimiters.
    #[test]
    fn length_and_structure(case in case()) {
        let dir = TempDir::new("prop-structure");
        let (mut body, datas) = build(&case, &dir);
        let len = body.content_length().expect("known length");
        let bytes = read_to_end(&mut body);
        prop_assert_eq!(bytes.len() as u64, len);
        prop_assert!(body.is_finished());
        prop_assert_eq!(body.position(), len);
        let boundary = body.boundary().to_owned();
        if let Some(given) = case.boundary {
            prop_assert_eq!(&boundary, given);
        }
        if let Err(msg) = check_structure(&bytes, &boundary, &case, &datas) {
            prop_assert!(false, "{}", msg);
        }
        let starts = body.part_starts();
        prop_assert_eq!(starts.len(), case.parts.len() + 1);
        for (i, &start) in starts.iter().enumerate() {
            let at = &bytes[start as usize..];
            prop_assert!(at.starts_with(b"--") && at[2..].starts_with(boundary.as_bytes()));
            let tail = &at[2 + boundary.len()..];
            if i == case.parts.len() {
                prop_assert_eq!(tail, &b"--\r\n"[..]);
            } else {
                prop_assert!(tail.starts_with(b"\r\nContent-Disposition: "));
            }
        }
    }

    /// (b) seeking to any offset and reading to the end gives exactly the suffix, from a fresh
    /// body and from wherever a previous partial read left the stream.
    #[test]
    fn seek_gives_the_suffix(
        case in case(),
        fractions in prop::collection::vec(0.0f64..=1.0, 4..9),
        partial in prop::collection::vec((0.0f64..=1.0, 0usize..70_000), 1..6),
    ) {
        let dir = TempDir::new("prop-seek");
        let (mut body, _) = build(&case, &dir);
        let full = read_to_end(&mut body);
        let len = full.len() as u64;
        let mut offsets: Vec<u64> = vec![0, len, len.saturating_sub(1)];
        offsets.extend(fractions.iter().map(|f| (f * len as f64) as u64));
        for &s in body.part_starts() {
            offsets.extend([s.saturating_sub(1), s, (s + 1).min(len), (s + 150).min(len)]);
        }
        for offset in offsets {
            body.seek(offset).map_err(|e| TestCaseError::fail(format!("seek {offset}: {e}")))?;
            prop_assert_eq!(body.position(), offset);
            let rest = read_to_end(&mut body);
            prop_assert!(rest == full[offset as usize..], "suffix from {} of {} differs", offset, len);
        }
        // Seek, read a little, seek elsewhere: the stream is right from any state.
        for (fraction, amount) in partial {
            let offset = (fraction * len as f64) as u64;
            body.seek(offset).map_err(|e| TestCaseError::fail(format!("seek {offset}: {e}")))?;
            let want = &full[offset as usize..(offset as usize + amount).min(full.len())];
            let mut got = vec![0u8; want.len()];
            body.read_exact(&mut got).expect("read_exact");
            prop_assert!(got == want, "{} bytes from {} differ", amount, offset);
        }
        // A seek past the end is refused and moves nothing.
        let before = body.position();
        prop_assert!(body.seek(len + 1).is_err());
        prop_assert_eq!(body.position(), before);
    }

    /// (c) reading through buffers of random small sizes gives the same bytes as one
    /// `read_to_end`, and `next_chunk_len` predicts each chunk.
    #[test]
    fn buffer_sizes_do_not_matter(
        case in case(),
        sizes in prop::collection::vec(1usize..5000, 1..24),
    ) {
        let dir = TempDir::new("prop-buffers");
        let (mut body, _) = build(&case, &dir);
        let full = read_to_end(&mut body);
        body.seek(0).expect("rewind");
        let mut out = Vec::new();
        let mut buf = vec![0u8; 5000];
        for size in sizes.iter().cycle() {
            let predicted = body.next_chunk_len(*size);
            let n = body.fill(&mut buf[..*size]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(predicted, (n > 0).then_some(n));
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        prop_assert!(out == full, "chunked read differs");
        // And once more through a fresh body (same boundary) with one fixed buffer size.
        let boundary = body.boundary().to_owned();
        let (mut body, _) = build_with(&case, &dir, Some(&boundary));
        let again = fill_all(&mut body, sizes[0]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(again == full, "second body differs");
    }
}
