//! Reader parts: unknown length (chunked transfer), known length, rewinding, and readers that
//! lie about their length or fail.

mod common;

use std::io::{self, Cursor, Read, Seek, SeekFrom};

use common::{fill_all, options, read_all, reader_part};
use poster_core::{
    Body, Error, EscapeMode, Form, FormOptions, Part, PartReader, ReadOnce, Rewindable, Source,
};

const B: &str = "XYZXYZXYZ";

fn opts() -> FormOptions {
    options(B, EscapeMode::Quoted)
}

/// A reader that hands out at most `step` bytes per call and is interrupted every other call.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    calls: usize,
}

impl PartReader for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(2) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = buf.len().min(self.step).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A reader that fails after `ok` bytes.
struct Failing {
    ok: usize,
}

impl PartReader for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "pipe broke"));
        }
        let n = buf.len().min(self.ok);
        buf[..n].fill(b'r');
        self.ok -= n;
        Ok(n)
    }
}

fn expected(parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content_type, data) in parts {
        out.extend_from_slice(
            format!(
                "--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    out
}

fn unknown_once(data: &[u8]) -> Source {
    Source::Reader {
        reader: Box::new(ReadOnce(Cursor::new(data.to_vec()))),
        len: None,
    }
}

const OCTET: &str = "application/octet-stream";
const TEXT: &str = "text/plain; charset=utf-8";

#[test]
fn unknown_length_reader_streams_fully_without_a_length() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let make = || {
        Form::new()
            .part(Part::text("before", "1"))
            .part(Part::new("stream", unknown_once(&data)))
            .part(Part::bytes("after", vec![b'a'; 70_000]))
            .build(&opts())
            .unwrap()
    };
    let want = expected(&[
        ("before", TEXT, b"1"),
        ("stream", OCTET, &data),
        ("after", TEXT, &vec![b'a'; 70_000]),
    ]);
    let mut body = make();
    assert_eq!(body.content_length(), None);
    assert!(body.part_starts().is_empty());
    assert_eq!(read_all(&mut body).unwrap(), want);
    assert!(body.is_finished());
    assert_eq!(body.position(), want.len() as u64);

    let mut body = make();
    assert_eq!(fill_all(&mut body, 1).unwrap(), want);
    let mut body = make();
    assert_eq!(fill_all(&mut body, 1 << 20).unwrap(), want);
}

#[test]
fn unknown_length_non_rewindable_reader_cannot_seek_back() {
    let mut body = Form::new()
        .part(Part::new("stream", unknown_once(b"some data")))
        .build(&opts())
        .unwrap();
    // At the start, seeking to the start is a no-op.
    body.seek(0).unwrap();
    let first = read_all(&mut body).unwrap();
    assert_eq!(first, expected(&[("stream", OCTET, b"some data")]));
    let err = body.seek(0).unwrap_err();
    assert!(matches!(err, Error::NotSeekable { .. }), "{err:?}");
    assert!(err.to_string().contains("stream"), "{err}");
    // Other offsets are refused for a body of unknown length.
    assert!(matches!(body.seek(3), Err(Error::NotSeekable { .. })));
    // io::Seek: from the end is impossible without a length; errors are InvalidInput.
    let io_err = Seek::seek(&mut body, SeekFrom::End(0)).unwrap_err();
    assert_eq!(io_err.kind(), io::ErrorKind::InvalidInput);
    let io_err = Seek::seek(&mut body, SeekFrom::Start(0)).unwrap_err();
    assert_eq!(io_err.kind(), io::ErrorKind::InvalidInput);
    // The failed seeks moved nothing.
    assert_eq!(body.position(), first.len() as u64);
    assert!(read_all(&mut body).unwrap().is_empty());
}

#[test]
fn unknown_length_rewindable_reader_goes_back_to_the_start() {
    let data = vec![b'd'; 100_000];
    let mut body = Form::new()
        .part(Part::new(
            "stream",
            Source::Reader {
                reader: Box::new(Rewindable::new(Cursor::new(data.clone())).unwrap()),
                len: None,
            },
        ))
        .build(&opts())
        .unwrap();
    let want = expected(&[("stream", OCTET, &data)]);
    assert_eq!(read_all(&mut body).unwrap(), want);
    body.seek(0).unwrap();
    assert_eq!(fill_all(&mut body, 777).unwrap(), want);
    assert!(matches!(body.seek(10), Err(Error::NotSeekable { .. })));
}

#[test]
fn unknown_length_trickling_reader_hands_out_what_it_has() {
    let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let mut body = Form::new()
        .part(Part::new(
            "stream",
            Source::Reader {
                reader: Box::new(Trickle {
                    data: data.clone(),
                    pos: 0,
                    step: 100,
                    calls: 0,
                }),
                len: None,
            },
        ))
        .build(&opts())
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    let mut reads = 0;
    loop {
        // Interrupted reads are retried inside; the body never reports them.
        let n = match body.fill(&mut buf) {
            Ok(n) => n,
            Err(e) if e.io_kind() == Some(io::ErrorKind::Interrupted) => continue,
            Err(e) => panic!("{e}"),
        };
        if n == 0 {
            break;
        }
        reads += 1;
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, expected(&[("stream", OCTET, &data)]));
    assert!(
        reads > 10,
        "an unsized reader's short reads are passed on ({reads} reads)"
    );
}

#[test]
fn known_length_trickling_reader_fills_whole_buffers() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
    let mut body = Form::new()
        .part(Part::new(
            "stream",
            Source::Reader {
                reader: Box::new(Trickle {
                    data: data.clone(),
                    pos: 0,
                    step: 7,
                    calls: 0,
                }),
                len: Some(5000),
            },
        ))
        .build(&opts())
        .unwrap();
    let want = expected(&[("stream", OCTET, &data)]);
    let mut buf = vec![0u8; 1000];
    let n = body.fill(&mut buf).unwrap();
    assert_eq!(n, 1000, "a sized body fills the whole buffer");
    let mut out = buf[..n].to_vec();
    out.extend(fill_all(&mut body, 1000).unwrap());
    assert_eq!(out, want);
}

#[test]
fn known_length_reader_seeks_anywhere_when_it_can_rewind() {
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 199) as u8).collect();
    let mut body = Form::new()
        .part(reader_part("a", &data))
        .part(Part::text("t", "x"))
        .part(reader_part("b", &data[..1000]))
        .build(&opts())
        .unwrap();
    let want = expected(&[
        ("a", OCTET, &data),
        ("t", TEXT, b"x"),
        ("b", OCTET, &data[..1000]),
    ]);
    assert_eq!(body.content_length(), Some(want.len() as u64));
    assert_eq!(read_all(&mut body).unwrap(), want);
    for offset in (0..=want.len()).rev().step_by(37) {
        body.seek(offset as u64).unwrap();
        assert_eq!(
            read_all(&mut body).unwrap(),
            &want[offset..],
            "from {offset}"
        );
    }
    // Forward then back within the same reader.
    body.seek(500).unwrap();
    let mut some = vec![0u8; 100];
    body.read_exact(&mut some).unwrap();
    assert_eq!(some, &want[500..600]);
    body.seek(200).unwrap();
    assert_eq!(read_all(&mut body).unwrap(), &want[200..]);
}

#[test]
fn known_length_read_once_reader_cannot_seek_back_after_reading() {
    let make = || {
        Form::new()
            .part(Part::new(
                "once",
                Source::Reader {
                    reader: Box::new(ReadOnce(Cursor::new(b"0123456789".to_vec()))),
                    len: Some(10),
                },
            ))
            .build(&opts())
            .unwrap()
    };
    let want = expected(&[("once", OCTET, b"0123456789")]);
    let mut body = make();
    assert_eq!(body.content_length(), Some(want.len() as u64));
    assert_eq!(read_all(&mut body).unwrap(), want);
    assert!(matches!(body.seek(0), Err(Error::NotSeekable { .. })));
    // Seeking past the reader needs no rewind.
    body.seek(want.len() as u64 - 3).unwrap();
    assert_eq!(read_all(&mut body).unwrap(), &want[want.len() - 3..]);
    // Before any read, a seek into the reader's data skips forward.
    let mut body = make();
    let offset = want.len() - 20;
    body.seek(offset as u64).unwrap();
    assert_eq!(read_all(&mut body).unwrap(), &want[offset..]);
}

fn assert_reader_size_changed(body: &mut Body, expected_len: u64, actual: u64) {
    let err = fill_all(body, 4096).unwrap_err();
    match &err {
        Error::SizeChanged {
            part,
            path,
            expected: e,
            actual: a,
        } => {
            assert_eq!(part, "r");
            assert_eq!(path, &None);
            assert_eq!((*e, *a), (expected_len, actual));
        }
        other => panic!("expected SizeChanged, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&expected_len.to_string()) && msg.contains(&actual.to_string()),
        "{msg}"
    );
}

#[test]
fn reader_shorter_or_longer_than_its_length_fails() {
    let short = |len| {
        Form::new()
            .part(Part::new(
                "r",
                Source::Reader {
                    reader: Box::new(ReadOnce(Cursor::new(vec![b'x'; 100]))),
                    len: Some(len),
                },
            ))
            .build(&opts())
            .unwrap()
    };
    assert_reader_size_changed(&mut short(150), 150, 100);
    assert_reader_size_changed(&mut short(60), 60, 61);
    let mut exact = short(100);
    assert_eq!(
        read_all(&mut exact).unwrap(),
        expected(&[("r", OCTET, &[b'x'; 100])])
    );
}

#[test]
fn failing_reader_reports_the_part_and_the_cause() {
    let mut body = Form::new()
        .part(Part::new(
            "r",
            Source::Reader {
                reader: Box::new(Failing { ok: 50 }),
                len: None,
            },
        ))
        .build(&opts())
        .unwrap();
    let err = fill_all(&mut body, 4096).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::ConnectionReset));
    assert!(
        matches!(&err, Error::Io { path: None, part, .. } if part == "r"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("\"r\"") && msg.contains("pipe broke"), "{msg}");
    // Through io::Read the kind survives.
    let mut body = Form::new()
        .part(Part::new(
            "r",
            Source::Reader {
                reader: Box::new(Failing { ok: 0 }),
                len: Some(10),
            },
        ))
        .build(&opts())
        .unwrap();
    let io_err = read_all(&mut body).unwrap_err();
    assert_eq!(io_err.kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn delimiter_in_unknown_length_reader_fails() {
    let mut body = Form::new()
        .part(Part::new("r", unknown_once(b"abc\r\n--XYZXYZXYZ\r\n")))
        .build(&opts())
        .unwrap();
    let err = fill_all(&mut body, 4096).unwrap_err();
    assert!(
        matches!(&err, Error::BoundaryInData { part, offset: 5 } if part == "r"),
        "{err:?}"
    );
}

#[test]
fn empty_readers_are_empty_parts() {
    for len in [Some(0), None] {
        let mut body = Form::new()
            .part(Part::new(
                "r",
                Source::Reader {
                    reader: Box::new(ReadOnce(io::empty())),
                    len,
                },
            ))
            .build(&opts())
            .unwrap();
        let want = expected(&[("r", OCTET, b"")]);
        assert_eq!(read_all(&mut body).unwrap(), want, "{len:?}");
        if len.is_some() {
            assert_eq!(body.content_length(), Some(want.len() as u64));
        }
    }
}

#[test]
fn seeking_into_an_interrupted_reader_retries() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
    let mut body = Form::new()
        .part(Part::new(
            "stream",
            Source::Reader {
                reader: Box::new(Trickle {
                    data: data.clone(),
                    pos: 0,
                    step: 7,
                    calls: 0,
                }),
                len: Some(5000),
            },
        ))
        .build(&opts())
        .unwrap();
    let want = expected(&[("stream", OCTET, &data)]);
    // Before any read: the body skips 1000 bytes of the reader, one short read at a time.
    let offset = want.len() - 4000;
    body.seek(offset as u64)
        .unwrap_or_else(|e| panic!("seek into the reader failed: {e}"));
    assert_eq!(read_all(&mut body).unwrap(), &want[offset..]);
}
