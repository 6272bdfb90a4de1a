//! Boundary collisions: the delimiter in in-memory values (refused at build), in file and reader
//! data (refused while streaming, across read edges), and what is not a delimiter.

mod common;

use common::{TempDir, fill_all, options, read_all, reader_part};
use poster_core::{Body, Error, EscapeMode, Form, FormOptions, Part};

const B: &str = "BOUNDARY";
const DELIM: &[u8] = b"\r\n--BOUNDARY";
const MIB: usize = 1 << 20;

fn opts() -> FormOptions {
    options(B, EscapeMode::Quoted)
}

fn unchecked() -> FormOptions {
    FormOptions {
        skip_stream_boundary_check: true,
        ..opts()
    }
}

fn assert_collision(err: &Error, part: &str, offset: u64) {
    match err {
        Error::BoundaryInData { part: p, offset: o } => {
            assert_eq!(p, part, "part");
            assert_eq!(*o, offset, "offset");
        }
        other => panic!("expected BoundaryInData in {part:?} at {offset}, got {other:?}"),
    }
    assert!(err.to_string().contains("boundary"), "{err}");
}

fn build_value(value: &[u8], opts: &FormOptions) -> poster_core::Result<Body> {
    Form::new()
        .part(Part::text("first", "ok"))
        .part(Part::bytes("value", value.to_vec()))
        .build(opts)
}

#[test]
fn delimiter_in_memory_value_fails_at_build() {
    for opts in [opts(), unchecked()] {
        let err = build_value(b"ab\r\n--BOUNDARY\r\nmore", &opts).unwrap_err();
        assert_collision(&err, "value", 4);
        let err = build_value(b"--BOUNDARY", &opts).unwrap_err();
        assert_collision(&err, "value", 0);
        let err = build_value(b"--BOUNDARY--\r\n", &opts).unwrap_err();
        assert_collision(&err, "value", 0);
        let err = build_value(b"x\r\n--BOUNDARY--", &opts).unwrap_err();
        assert_collision(&err, "value", 3);
    }
}

#[test]
fn delimiter_in_large_shared_value_fails_at_build() {
    // Over 64 KiB: the value is sent from its own buffer, and still checked when built.
    let mut value = vec![b'a'; 200_000];
    value[150_000..150_000 + DELIM.len()].copy_from_slice(DELIM);
    let err = build_value(&value, &opts()).unwrap_err();
    assert_collision(&err, "value", 150_002);
    let mut value = vec![b'a'; 100_000];
    value[..10].copy_from_slice(b"--BOUNDARY");
    let err = build_value(&value, &unchecked()).unwrap_err();
    assert_collision(&err, "value", 0);
}

/// poster's false positives are gone: only CRLF--boundary (or --boundary at the very start of
/// the data) counts.
const NOT_DELIMITERS: &[&[u8]] = &[
    b"a\n--BOUNDARY\nb",
    b"\n--BOUNDARY",
    b"a--BOUNDARY",
    b"x--BOUNDARY\r\n",
    b"\r--BOUNDARY",
    b"a\r\n-BOUNDARY",
    b"a\r\n--BOUNDAR",
    b"a\r\n--boundary",
    b"-BOUNDARY",
    b" --BOUNDARY",
];

#[test]
fn near_misses_in_memory_values_are_sent() {
    for value in NOT_DELIMITERS {
        let mut body = build_value(value, &opts())
            .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(value)));
        let bytes = read_all(&mut body).unwrap();
        assert_eq!(bytes.len() as u64, body.content_length().unwrap());
    }
    // And in a large value, around poster's 4096-byte block edge.
    let mut value = vec![b'A'; 4084];
    value.extend_from_slice(b"\n--BOUNDARYXXXX");
    value.extend_from_slice(&vec![b'Q'; 70_000]);
    value.extend_from_slice(b"A--BOUNDARY\nB");
    build_value(&value, &opts()).unwrap();
}

#[test]
fn near_misses_in_files_and_readers_stream_fine() {
    let dir = TempDir::new("boundary-near");
    for (i, value) in NOT_DELIMITERS.iter().enumerate() {
        let path = dir.write(&format!("f{i}"), value);
        let mut body = Form::new()
            .part(Part::file("file", &path))
            .part(reader_part("reader", value))
            .build(&opts())
            .unwrap();
        let bytes = fill_all(&mut body, 3).unwrap();
        assert_eq!(bytes.len() as u64, body.content_length().unwrap());
    }
}

fn file_body(dir: &TempDir, data: &[u8], opts: &FormOptions) -> Body {
    let path = dir.write("data.bin", data);
    Form::new()
        .part(Part::file("file", &path))
        .build(opts)
        .unwrap()
}

#[test]
fn delimiter_in_file_fails_while_reading() {
    let dir = TempDir::new("boundary-file");
    let mut data = vec![b'x'; 5000];
    data[3000..3000 + DELIM.len()].copy_from_slice(DELIM);
    let mut body = file_body(&dir, &data, &opts());
    let err = fill_all(&mut body, 64 * 1024).unwrap_err();
    assert_collision(&err, "file", 3002);
    // The bytes before the failing read went out, the ones with the delimiter did not.
    assert!(!body.is_finished());
    // As an io::Error: InvalidData.
    let mut body = file_body(&dir, &data, &opts());
    let io_err = read_all(&mut body).unwrap_err();
    assert_eq!(io_err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn delimiter_at_the_very_start_of_a_file_fails() {
    let dir = TempDir::new("boundary-start");
    for data in [
        &b"--BOUNDARY"[..],
        b"--BOUNDARY--\r\n",
        b"--BOUNDARY and more data",
    ] {
        for buf in [1, 5, 64 * 1024] {
            let mut body = file_body(&dir, data, &opts());
            let err = fill_all(&mut body, buf).unwrap_err();
            assert_collision(&err, "file", 0);
        }
    }
}

#[test]
fn delimiter_at_the_very_start_of_a_reader_fails() {
    let mut body = Form::new()
        .part(reader_part("reader", b"--BOUNDARY\r\nrest"))
        .build(&opts())
        .unwrap();
    let err = fill_all(&mut body, 2).unwrap_err();
    assert_collision(&err, "reader", 0);
}

/// The header of a lone file part named "file" with filename "data.bin".
fn file_header_len() -> usize {
    b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\n\
      Content-Type: application/octet-stream\r\n\r\n"
        .len()
}

#[test]
fn delimiter_straddling_the_1_mib_read_edge_fails() {
    let dir = TempDir::new("boundary-edge");
    let header = file_header_len();
    // With a 1 MiB buffer the first read takes the header and the file's first
    // (1 MiB - header) bytes; the second edge lies 1 MiB later. Also try the file's own 1 MiB
    // mark, in case data is read in aligned 1 MiB blocks.
    for edge in [MIB - header, 2 * MIB - header, MIB] {
        for k in 0..=DELIM.len() {
            let at = edge - k;
            let mut data = vec![b'z'; edge + 100];
            data[at..at + DELIM.len()].copy_from_slice(DELIM);
            let mut body = file_body(&dir, &data, &opts());
            let err = fill_all(&mut body, MIB).unwrap_err();
            assert_collision(&err, "file", (at + 2) as u64);
            // The skip option lets the same data through.
            let mut body = file_body(&dir, &data, &unchecked());
            let bytes = fill_all(&mut body, MIB).unwrap();
            assert_eq!(bytes.len() as u64, body.content_length().unwrap());
        }
    }
}

#[test]
fn delimiter_split_across_every_small_read_fails() {
    let dir = TempDir::new("boundary-small");
    let mut data = vec![b'q'; 200];
    data[77..77 + DELIM.len()].copy_from_slice(DELIM);
    let path = dir.write("data.bin", &data);
    for buf in 1..=40 {
        let mut body = Form::new()
            .part(Part::text("a", "b"))
            .part(Part::file("file", &path))
            .part(reader_part("reader", &data))
            .build(&opts())
            .unwrap();
        let err = fill_all(&mut body, buf).unwrap_err();
        assert_collision(&err, "file", 79);
    }
    for buf in 1..=40 {
        let mut body = Form::new()
            .part(reader_part("reader", &data))
            .build(&opts())
            .unwrap();
        let err = fill_all(&mut body, buf).unwrap_err();
        assert_collision(&err, "reader", 79);
    }
}

#[test]
fn delimiter_in_reader_straddling_the_1_mib_edge_fails() {
    let header = b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"reader\"\r\n\
                   Content-Type: application/octet-stream\r\n\r\n"
        .len();
    let edge = MIB - header;
    for k in [1, 5, DELIM.len() - 1] {
        let at = edge - k;
        let mut data = vec![b'z'; edge + 100];
        data[at..at + DELIM.len()].copy_from_slice(DELIM);
        let mut body = Form::new()
            .part(reader_part("reader", &data))
            .build(&opts())
            .unwrap();
        let err = fill_all(&mut body, MIB).unwrap_err();
        assert_collision(&err, "reader", (at + 2) as u64);
    }
}

#[test]
fn skip_stream_boundary_check_lets_file_and_reader_data_through() {
    let dir = TempDir::new("boundary-skip");
    let data = b"--BOUNDARY\r\n\r\n--BOUNDARY--\r\n";
    let path = dir.write("data.bin", data);
    let mut body = Form::new()
        .part(Part::file("file", &path))
        .part(reader_part("reader", data))
        .build(&unchecked())
        .unwrap();
    let bytes = read_all(&mut body).unwrap();
    assert_eq!(bytes.len() as u64, body.content_length().unwrap());
    // With the check on, the same form fails.
    let mut body = Form::new()
        .part(Part::file("file", &path))
        .part(reader_part("reader", data))
        .build(&opts())
        .unwrap();
    assert_collision(&read_all_err(&mut body), "file", 0);
}

fn read_all_err(body: &mut Body) -> Error {
    fill_all(body, 8192).unwrap_err()
}

#[test]
fn seeking_into_the_middle_of_a_delimiter_in_a_file_still_finds_it() {
    let dir = TempDir::new("boundary-seek");
    let mut data = vec![b'x'; 1000];
    data[500..500 + DELIM.len()].copy_from_slice(DELIM);
    let mut body = file_body(&dir, &data, &opts());
    let start = file_header_len() as u64;
    // Seeking to any byte of the delimiter after its first: the part already sent plus the rest
    // would complete it.
    for k in 1..DELIM.len() as u64 {
        body.seek(start + 500 + k).unwrap();
        let err = fill_all(&mut body, 4096).unwrap_err();
        assert_collision(&err, "file", 502);
    }
    // Before it: found ahead.
    body.seek(start + 10).unwrap();
    assert_collision(&fill_all(&mut body, 7).unwrap_err(), "file", 502);
    // After it: the rest of the file is clean.
    body.seek(start + 500 + DELIM.len() as u64).unwrap();
    let rest = fill_all(&mut body, 4096).unwrap();
    assert_eq!(
        rest.len(),
        1000 - 500 - DELIM.len() + b"\r\n--BOUNDARY--\r\n".len()
    );
}

#[test]
fn seeking_into_the_middle_of_a_delimiter_in_a_reader_still_finds_it() {
    let mut data = vec![b'x'; 1000];
    data[500..500 + DELIM.len()].copy_from_slice(DELIM);
    let mut body = Form::new()
        .part(reader_part("reader", &data))
        .build(&opts())
        .unwrap();
    let start = body.content_length().unwrap() - 1000 - b"\r\n--BOUNDARY--\r\n".len() as u64;
    body.seek(start + 505).unwrap();
    match fill_all(&mut body, 4096) {
        Ok(rest) => panic!(
            "delimiter missed: {} bytes sent from offset 505 of the reader's data, which \
             complete the \\r\\n--BOUNDARY that starts at offset 500",
            rest.len()
        ),
        Err(err) => assert_collision(&err, "reader", 502),
    }
}
