//! What `build` refuses before producing a byte: invalid boundaries and unsafe header values.

mod common;

use common::{options, read_all};
use poster_core::{Error, Form, FormOptions, Part};

fn build_with_boundary(boundary: &str) -> poster_core::Result<poster_core::Body> {
    Form::new()
        .part(Part::text("foo", "bar"))
        .build(&FormOptions {
            boundary: Some(boundary.to_owned()),
            ..FormOptions::default()
        })
}

#[test]
fn invalid_boundaries_are_refused() {
    let long = "x".repeat(71);
    for bad in [
        "",
        long.as_str(),
        "abc ",
        "ab\rcd",
        "ab\ncd",
        "a\"b",
        "a;b",
        "\u{e9}t\u{e9}",
        "a\0",
    ] {
        match build_with_boundary(bad) {
            Err(Error::InvalidBoundary { boundary, reason }) => {
                assert_eq!(boundary, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: expected InvalidBoundary, got {other:?}"),
        }
    }
    // Also for an empty form.
    assert!(matches!(
        Form::new().build(&FormOptions {
            boundary: Some(String::new()),
            ..FormOptions::default()
        }),
        Err(Error::InvalidBoundary { .. })
    ));
    let msg = build_with_boundary("abc ").unwrap_err().to_string();
    assert!(msg.contains("\"abc \"") && msg.contains("space"), "{msg}");
}

#[test]
fn valid_edge_boundaries_are_used_as_given() {
    let longest = "y".repeat(70);
    for good in ["a", longest.as_str(), " a", "a b", "'()+_,-./:=?", "0"] {
        let mut body = build_with_boundary(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        assert_eq!(body.boundary(), good);
        let bytes = read_all(&mut body).unwrap();
        assert!(bytes.starts_with(format!("--{good}\r\n").as_bytes()));
        assert!(bytes.ends_with(format!("\r\n--{good}--\r\n").as_bytes()));
        assert_eq!(bytes.len() as u64, body.content_length().unwrap());
    }
}

fn header_error(part: Part) -> (String, String) {
    match Form::new()
        .part(Part::text("ok", "1"))
        .part(part)
        .build(&options("XYZ", poster_core::EscapeMode::Quoted))
    {
        Err(Error::InvalidHeader {
            part,
            header,
            reason,
        }) => {
            assert!(!reason.is_empty());
            (part, header)
        }
        other => panic!("expected InvalidHeader, got {other:?}"),
    }
}

#[test]
fn custom_header_values_with_cr_lf_or_nul_are_refused() {
    for value in [
        "1\r\nX-Evil: 2",
        "1\r",
        "1\nX-Evil: 2",
        "a\0b",
        "\r\n\r\nbody",
        "a\x01b",
        "a\x7fb",
    ] {
        let (part, header) = header_error(Part::text("field", "v").header("X-Note", value));
        assert_eq!(
            (part.as_str(), header.as_str()),
            ("field", "X-Note"),
            "{value:?}"
        );
    }
    // A Content-Type given as a custom header is checked too.
    let (_, header) =
        header_error(Part::text("field", "v").header("Content-Type", "text/plain\r\nX: 1"));
    assert_eq!(header, "Content-Type");
}

#[test]
fn content_types_with_cr_or_lf_are_refused() {
    for value in [
        "text/html\r\nX-Evil: 1",
        "text/html\n",
        "text/\rhtml",
        "text/html\0",
    ] {
        let (part, header) = header_error(Part::text("field", "v").content_type(value));
        assert_eq!(
            (part.as_str(), header.as_str()),
            ("field", "Content-Type"),
            "{value:?}"
        );
    }
    let err = Form::new()
        .part(Part::text("field", "v").content_type("a\nb"))
        .build(&FormOptions::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"field\"") && msg.contains("Content-Type"),
        "{msg}"
    );
}

#[test]
fn invalid_header_names_and_disposition_overrides_are_refused() {
    for name in [
        "",
        "X Note",
        "X:Note",
        "X-\u{e9}",
        "X\r\nY",
        "Content-Disposition",
        "content-disposition",
    ] {
        let (part, header) = header_error(Part::text("field", "v").header(name, "1"));
        assert_eq!(
            (part.as_str(), header.as_str()),
            ("field", name),
            "{name:?}"
        );
    }
}

#[test]
fn tabs_and_non_ascii_in_header_values_are_allowed() {
    let mut body = Form::new()
        .part(
            Part::text("field", "v")
                .content_type("text/plain;\tcharset=utf-8")
                .header("X-Note", "caf\u{e9}\tok"),
        )
        .build(&options("XYZ", poster_core::EscapeMode::Quoted))
        .unwrap();
    let text = String::from_utf8(read_all(&mut body).unwrap()).unwrap();
    assert!(
        text.contains("Content-Type: text/plain;\tcharset=utf-8\r\nX-Note: caf\u{e9}\tok\r\n\r\nv")
    );
}

#[test]
fn names_and_filenames_with_cr_lf_are_escaped_not_refused() {
    for mode in [
        poster_core::EscapeMode::Quoted,
        poster_core::EscapeMode::Html5,
        poster_core::EscapeMode::Poster,
    ] {
        let mut body = Form::new()
            .part(Part::text("a\r\n\r\nX-Evil: 1", "v").filename("b\r\nX-Evil: 2\r\n\r\n"))
            .build(&options("XYZ", mode))
            .unwrap();
        let text = String::from_utf8(read_all(&mut body).unwrap()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 7, "{mode}: {text:?}");
        assert!(
            lines[1].starts_with("Content-Disposition: form-data; name=\""),
            "{mode}"
        );
        assert!(
            !lines[1].contains('\n') && !lines[1].contains('\r'),
            "{mode}"
        );
        assert!(lines[2].starts_with("Content-Type: "), "{mode}");
        assert!(
            lines.iter().all(|l| !l.starts_with("X-Evil")),
            "{mode}: {text:?}"
        );
    }
}

#[test]
fn build_errors_come_before_any_io() {
    // An invalid boundary is reported even when a later part's file does not exist.
    let err = Form::new()
        .part(Part::file("f", "/nonexistent/poster-core/file"))
        .build(&FormOptions {
            boundary: Some("bad boundary ".into()),
            ..FormOptions::default()
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidBoundary { .. }), "{err:?}");
}
