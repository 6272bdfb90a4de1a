//! The header block of one part, exactly as it goes on the wire:
//! `--B CRLF Content-Disposition: form-data; name="N"[; filename="F"] CRLF Content-Type: T CRLF
//! [extra headers CRLF] CRLF`.

use crate::error::{Error, Result};
use crate::escape::{self, EscapeMode};

/// The content type of parts without one that are not files, and of every untyped part in
/// poster mode.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
/// The content type of file parts without one (outside poster mode).
pub const OCTET_STREAM: &str = "application/octet-stream";

/// What a part header is made of.
#[derive(Debug, Clone, Copy)]
pub struct PartHead<'a> {
    /// Field name.
    pub name: &'a str,
    /// Filename, if any.
    pub filename: Option<&'a str>,
    /// Declared content type, if any.
    pub content_type: Option<&'a str>,
    /// Extra header lines.
    pub headers: &'a [(String, String)],
    /// Whether the data is a file (decides the default content type).
    pub is_file: bool,
}

fn invalid(part: &str, header: &str, reason: &'static str) -> Error {
    Error::InvalidHeader {
        part: part.to_owned(),
        header: header.to_owned(),
        reason,
    }
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Refuses header values that would break the header block: a CR, LF or NUL cannot be escaped in
/// a header value, and other control characters are never valid there.
fn check_value(part: &str, header: &str, value: &str) -> Result<()> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(invalid(part, header, "contains CR, LF or NUL"));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(invalid(part, header, "contains a control character"));
    }
    Ok(())
}

/// Checks everything a part header carries that cannot be escaped, before any byte is produced.
pub fn validate(head: &PartHead<'_>) -> Result<()> {
    if let Some(content_type) = head.content_type {
        check_value(head.name, "Content-Type", content_type)?;
    }
    for (name, value) in head.headers {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(invalid(
                head.name,
                name,
                "is not a valid header name (RFC 9110 token)",
            ));
        }
        if name.eq_ignore_ascii_case("content-disposition") {
            return Err(invalid(
                head.name,
                name,
                "is written by the encoder from the name and filename; it cannot be overridden",
            ));
        }
        check_value(head.name, name, value)?;
    }
    Ok(())
}

/// Appends the header block of a part to `out`. [`validate`] must have accepted `head`.
pub fn render(out: &mut Vec<u8>, boundary: &str, head: &PartHead<'_>, mode: EscapeMode) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
    escape::push_name(out, head.name, mode);
    out.push(b'"');
    if let Some(filename) = head.filename {
        // poster omitted an empty filename; browsers send filename="" for an empty file input.
        if mode != EscapeMode::Poster || !filename.is_empty() {
            out.extend_from_slice(b"; filename=\"");
            escape::push_filename(out, filename, mode);
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"\r\nContent-Type: ");
    let custom_type = head
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let content_type = custom_type
        .or(head.content_type.filter(|t| !t.is_empty()))
        .unwrap_or(if head.is_file && mode != EscapeMode::Poster {
            OCTET_STREAM
        } else {
            TEXT_PLAIN
        });
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.headers {
        if name.eq_ignore_ascii_case("content-type") {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The header of a plain text field (no filename, no type, no extra headers) as a prefix and a
/// suffix around the escaped name: the same bytes as [`render`], in three copies instead of ten.
#[derive(Debug)]
pub(crate) struct FieldTemplate {
    prefix: Vec<u8>,
    mode: EscapeMode,
}

const FIELD_SUFFIX: &[u8] = b"\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";

impl FieldTemplate {
    pub(crate) fn new(boundary: &str, mode: EscapeMode) -> FieldTemplate {
        let mut prefix = Vec::with_capacity(boundary.len() + 48);
        prefix.extend_from_slice(b"--");
        prefix.extend_from_slice(boundary.as_bytes());
        prefix.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        FieldTemplate { prefix, mode }
    }

    pub(crate) fn render(&self, out: &mut Vec<u8>, name: &str) {
        out.extend_from_slice(&self.prefix);
        escape::push_name(out, name, self.mode);
        out.extend_from_slice(FIELD_SUFFIX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(name: &'a str, headers: &'a [(String, String)]) -> PartHead<'a> {
        PartHead {
            name,
            filename: None,
            content_type: None,
            headers,
            is_file: false,
        }
    }

    #[test]
    fn text_field_header() {
        let mut out = Vec::new();
        render(&mut out, "XYZ", &head("foo", &[]), EscapeMode::Quoted);
        assert_eq!(
            out,
            b"--XYZ\r\nContent-Disposition: form-data; name=\"foo\"\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\r\n"
        );
    }

    #[test]
    fn field_template_renders_like_render() {
        for mode in [EscapeMode::Quoted, EscapeMode::Html5, EscapeMode::Poster] {
            for name in ["a", "naïve \"q\"\r\n", "", "☃"] {
                let mut expected = Vec::new();
                render(&mut expected, "XYZ", &head(name, &[]), mode);
                let mut actual = Vec::new();
                FieldTemplate::new("XYZ", mode).render(&mut actual, name);
                assert_eq!(actual, expected, "{mode} {name:?}");
            }
        }
    }

    #[test]
    fn custom_headers_are_checked() {
        let bad = [("X-A".to_owned(), "1\r\nX-B: 2".to_owned())];
        assert!(validate(&head("f", &bad)).is_err());
        let bad_name = [("X A".to_owned(), "1".to_owned())];
        assert!(validate(&head("f", &bad_name)).is_err());
        let disposition = [("content-disposition".to_owned(), "x".to_owned())];
        assert!(validate(&head("f", &disposition)).is_err());
        let ok = [("X-Checksum".to_owned(), "abc".to_owned())];
        validate(&head("f", &ok)).unwrap();
        let mut out = Vec::new();
        render(&mut out, "B", &head("f", &ok), EscapeMode::Quoted);
        assert!(out.ends_with(b"X-Checksum: abc\r\n\r\n"));
    }

    #[test]
    fn content_type_with_newline_is_refused() {
        let mut h = head("f", &[]);
        h.content_type = Some("text/html\r\nX-Evil: 1");
        assert!(validate(&h).is_err());
    }
}
