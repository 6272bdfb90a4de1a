//! poster 0.8.1's golden vectors (`reference/poster_api.md` §7), byte for byte, in the default
//! `quoted` escape mode (where they apply) and in `poster` mode.

mod common;

use common::{options, read_all, reader_part};
use poster_core::{EscapeMode, Form, FormOptions, Part};

const BOUNDARY: &str = "XYZXYZXYZ";

const V1: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"foo\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbar\r\n--XYZXYZXYZ--\r\n";
const V2: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"key\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nvalue1\r\n--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"key\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nvalue2\r\n--XYZXYZXYZ--\r\n";
const V3: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"foo\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nb\xc3\xa1r\r\n--XYZXYZXYZ--\r\n";
const V4: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"=?utf-8?b?4piD?=\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbar\r\n--XYZXYZXYZ--\r\n";
const V5: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"foo\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfile data\r\n--XYZXYZXYZ--\r\n";
const V6: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"img\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--XYZXYZXYZ--\r\n";
const V7: &[u8] = b"--XYZXYZXYZ--\r\n";
const V8: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"&#9731;.txt\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx\r\n--XYZXYZXYZ--\r\n";
const V9: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\\\"b\\\\c.txt\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx\r\n--XYZXYZXYZ--\r\n";
const V10: &[u8] = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n1\r\n--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--XYZXYZXYZ--\r\n";

fn v1() -> Form {
    Form::new().part(Part::text("foo", "bar"))
}

fn v2() -> Form {
    Form::new()
        .part(Part::text("key", "value1"))
        .part(Part::text("key", "value2"))
}

fn v3() -> Form {
    Form::new().part(Part::text("foo", "b\u{e1}r"))
}

fn v4() -> Form {
    Form::new().part(Part::text("\u{2603}", "bar"))
}

fn v5() -> Form {
    Form::new().part(reader_part("foo", b"file data"))
}

fn v6() -> Form {
    Form::new().part(
        reader_part("img", b"PNG")
            .filename("a.png")
            .content_type("image/png"),
    )
}

fn v7() -> Form {
    Form::new()
}

fn v8() -> Form {
    Form::new().part(reader_part("f", b"x").filename("\u{2603}.txt"))
}

fn v9() -> Form {
    Form::new().part(reader_part("f", b"x").filename("a\"b\\c.txt"))
}

fn v10() -> Form {
    Form::new().part(Part::text("a", "1")).part(
        reader_part("f", b"\x00\x01")
            .filename("t.bin")
            .content_type("application/octet-stream"),
    )
}

/// Builds `form`, checks the Content-Type header, the Content-Length and the exact bytes.
fn check(label: &str, form: Form, opts: &FormOptions, expected: &[u8], expected_len: u64) {
    let mut body = form
        .build(opts)
        .unwrap_or_else(|e| panic!("{label}: build failed: {e}"));
    assert_eq!(
        body.content_type(),
        "multipart/form-data; boundary=XYZXYZXYZ",
        "{label}"
    );
    assert_eq!(body.content_length(), Some(expected_len), "{label}: length");
    assert_eq!(
        expected.len() as u64,
        expected_len,
        "{label}: vector self-check"
    );
    let bytes = read_all(&mut body).unwrap_or_else(|e| panic!("{label}: read failed: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(expected),
        "{label}: body"
    );
    assert_eq!(bytes, expected, "{label}: body bytes");
    assert!(body.is_finished(), "{label}");
    assert_eq!(body.position(), expected_len, "{label}");
}

#[test]
fn quoted_mode_reproduces_the_vectors_it_shares_with_poster() {
    let opts = options(BOUNDARY, EscapeMode::Quoted);
    check("V1", v1(), &opts, V1, 120);
    check("V2", v2(), &opts, V2, 231);
    check("V3", v3(), &opts, V3, 121);
    check("V7", v7(), &opts, V7, 15);
    check("V10", v10(), &opts, V10, 235);
}

#[test]
fn quoted_is_the_default_mode() {
    assert_eq!(EscapeMode::default(), EscapeMode::Quoted);
    let opts = FormOptions {
        boundary: Some(BOUNDARY.to_owned()),
        ..FormOptions::default()
    };
    check("V1 default", v1(), &opts, V1, 120);
    check("V10 default", v10(), &opts, V10, 235);
}

#[test]
fn poster_mode_reproduces_every_vector() {
    let opts = options(BOUNDARY, EscapeMode::Poster);
    check("V1", v1(), &opts, V1, 120);
    check("V2", v2(), &opts, V2, 231);
    check("V3", v3(), &opts, V3, 121);
    check("V4", v4(), &opts, V4, 133);
    check("V5", v5(), &opts, V5, 126);
    check("V6", v6(), &opts, V6, 122);
    check("V7", v7(), &opts, V7, 15);
    check("V8", v8(), &opts, V8, 140);
    check("V9", v9(), &opts, V9, 140);
    check("V10", v10(), &opts, V10, 235);
}

#[test]
fn vectors_read_the_same_through_tiny_buffers_and_seeks() {
    let opts = options(BOUNDARY, EscapeMode::Poster);
    for (label, make, expected) in [
        ("V5", v5 as fn() -> Form, V5),
        ("V6", v6, V6),
        ("V10", v10, V10),
    ] {
        let mut body = make().build(&opts).unwrap();
        let bytes = common::fill_all(&mut body, 1).unwrap();
        assert_eq!(bytes, expected, "{label}");
        for offset in 0..=expected.len() {
            body.seek(offset as u64).unwrap();
            let rest = read_all(&mut body).unwrap();
            assert_eq!(rest, &expected[offset..], "{label} from {offset}");
        }
    }
}

/// In the default mode a file part without a type is `application/octet-stream`; in poster mode it
/// is `text/plain; charset=utf-8`, as poster sent it.
#[test]
fn default_file_content_type_depends_on_mode() {
    let make = || Form::new().part(reader_part("f", b"x").filename("x.bin"));
    let header = |mode| {
        let mut body = make().build(&options(BOUNDARY, mode)).unwrap();
        let bytes = read_all(&mut body).unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let quoted = header(EscapeMode::Quoted);
    assert_eq!(
        quoted,
        "--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\nx\r\n--XYZXYZXYZ--\r\n"
    );
    let html5 = header(EscapeMode::Html5);
    assert_eq!(html5, quoted);
    let poster = header(EscapeMode::Poster);
    assert_eq!(
        poster,
        "--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nx\r\n--XYZXYZXYZ--\r\n"
    );
    // An in-memory value with a filename is still not a file: text/plain in every mode.
    for mode in [EscapeMode::Quoted, EscapeMode::Html5, EscapeMode::Poster] {
        let mut body = Form::new()
            .part(Part::bytes("f", b"x".to_vec()).filename("x.bin"))
            .build(&options(BOUNDARY, mode))
            .unwrap();
        let text = String::from_utf8(read_all(&mut body).unwrap()).unwrap();
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8\r\n"),
            "{mode}: {text}"
        );
    }
}

/// The non-poster modes escape V4, V8 and V9's names and filenames their own way.
#[test]
fn quoted_and_html5_escape_names_and_filenames() {
    let disposition = |form: Form, mode| {
        let mut body = form.build(&options(BOUNDARY, mode)).unwrap();
        let text = String::from_utf8(read_all(&mut body).unwrap()).unwrap();
        text.lines().nth(1).unwrap().to_owned()
    };
    assert_eq!(
        disposition(v4(), EscapeMode::Quoted),
        "Content-Disposition: form-data; name=\"\u{2603}\""
    );
    assert_eq!(
        disposition(v8(), EscapeMode::Quoted),
        "Content-Disposition: form-data; name=\"f\"; filename=\"\u{2603}.txt\""
    );
    assert_eq!(
        disposition(v9(), EscapeMode::Quoted),
        "Content-Disposition: form-data; name=\"f\"; filename=\"a\\\"b\\\\c.txt\""
    );
    assert_eq!(
        disposition(v9(), EscapeMode::Html5),
        "Content-Disposition: form-data; name=\"f\"; filename=\"a%22b\\c.txt\""
    );
    let crlf = || Form::new().part(Part::text("a\r\nb", "x").filename("c\r\nd"));
    assert_eq!(
        disposition(crlf(), EscapeMode::Quoted),
        "Content-Disposition: form-data; name=\"a%0D%0Ab\"; filename=\"c%0D%0Ad\""
    );
    assert_eq!(
        disposition(crlf(), EscapeMode::Html5),
        "Content-Disposition: form-data; name=\"a%0D%0Ab\"; filename=\"c%0D%0Ad\""
    );
}

#[test]
fn generated_boundary_is_used_consistently() {
    let mut body = v2().build(&FormOptions::default()).unwrap();
    let boundary = body.boundary().to_owned();
    assert_eq!(boundary.len(), 32);
    assert!(boundary.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        body.content_type(),
        format!("multipart/form-data; boundary={boundary}")
    );
    let bytes = read_all(&mut body).unwrap();
    let expected = String::from_utf8(V2.to_vec())
        .unwrap()
        .replace(BOUNDARY, &boundary);
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    assert_eq!(body.content_length(), Some(expected.len() as u64));
    let other = v2().build(&FormOptions::default()).unwrap();
    assert_ne!(other.boundary(), boundary);
}

#[test]
fn boundary_with_separators_is_quoted_in_the_header_only() {
    let mut body = v1().build(&options("ABC DEF", EscapeMode::Quoted)).unwrap();
    assert_eq!(
        body.content_type(),
        "multipart/form-data; boundary=\"ABC DEF\""
    );
    let expected = String::from_utf8(V1.to_vec())
        .unwrap()
        .replace(BOUNDARY, "ABC DEF");
    assert_eq!(body.content_length(), Some(expected.len() as u64));
    assert_eq!(
        String::from_utf8(read_all(&mut body).unwrap()).unwrap(),
        expected
    );
}

#[test]
fn part_starts_point_at_each_delimiter() {
    let body = v10().build(&options(BOUNDARY, EscapeMode::Poster)).unwrap();
    let starts = body.part_starts().to_vec();
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[0], 0);
    assert!(V10[starts[1] as usize..].starts_with(b"--XYZXYZXYZ\r\nContent-Disposition"));
    assert_eq!(&V10[starts[2] as usize..], b"--XYZXYZXYZ--\r\n");
}

#[test]
fn custom_headers_follow_content_type() {
    let mut body = Form::new()
        .part(
            Part::text("foo", "bar")
                .header("X-Checksum", "abc")
                .header("content-type", "text/csv"),
        )
        .build(&options(BOUNDARY, EscapeMode::Quoted))
        .unwrap();
    let len = body.content_length().unwrap();
    let text = String::from_utf8(read_all(&mut body).unwrap()).unwrap();
    assert_eq!(
        text,
        "--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"foo\"\r\n\
         Content-Type: text/csv\r\nX-Checksum: abc\r\n\r\nbar\r\n--XYZXYZXYZ--\r\n"
    );
    assert_eq!(len, text.len() as u64);
}

#[test]
fn io_seek_supports_every_whence_and_refuses_out_of_range() {
    use std::io::{ErrorKind, Read, Seek, SeekFrom};
    let mut body = v10().build(&options(BOUNDARY, EscapeMode::Poster)).unwrap();
    let len = V10.len() as u64;
    assert_eq!(Seek::seek(&mut body, SeekFrom::End(-15)).unwrap(), len - 15);
    let mut rest = Vec::new();
    body.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"--XYZXYZXYZ--\r\n");
    assert_eq!(Seek::seek(&mut body, SeekFrom::Start(10)).unwrap(), 10);
    assert_eq!(Seek::seek(&mut body, SeekFrom::Current(5)).unwrap(), 15);
    assert_eq!(Seek::seek(&mut body, SeekFrom::Current(-15)).unwrap(), 0);
    assert_eq!(body.stream_position().unwrap(), 0);
    for bad in [
        SeekFrom::Current(-1),
        SeekFrom::End(1),
        SeekFrom::Start(len + 1),
    ] {
        let err = Seek::seek(&mut body, bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert_eq!(body.position(), 0, "{bad:?} moved the stream");
    }
    match poster_core::Body::seek(&mut body, len + 1) {
        Err(poster_core::Error::SeekOutOfRange { offset, len: l }) => {
            assert_eq!((offset, l), (i128::from(len + 1), len));
        }
        other => panic!("expected SeekOutOfRange, got {other:?}"),
    }
    assert_eq!(read_all(&mut body).unwrap(), V10);
}
