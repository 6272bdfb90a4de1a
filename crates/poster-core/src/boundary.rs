//! Multipart boundaries: generating them, validating a caller's, and naming them in the
//! `Content-Type` header.

use crate::error::{Error, Result};

/// Random bytes in a generated boundary: 128 bits, far past any realistic collision.
const RANDOM_BYTES: usize = 16;

/// A new boundary of 32 lowercase hex digits carrying 128 random bits (the shape of poster's
/// `uuid4().hex`, with 6 more random bits).
pub fn generate() -> Result<String> {
    let mut raw = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut raw).map_err(|e| Error::Random(e.to_string()))?;
    let mut out = String::with_capacity(RANDOM_BYTES * 2);
    for byte in raw {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// RFC 2046 `bchars`: `DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," / "-" / "." / "/" /
/// ":" / "=" / "?"` and space.
fn is_bchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&byte)
}

/// Checks a caller-supplied boundary against RFC 2046 §5.1.1: 1 to 70 `bchars`, not ending in a
/// space. The boundary is used as given, never re-quoted.
pub fn validate(boundary: &str) -> Result<()> {
    let fail = |reason| {
        Err(Error::InvalidBoundary {
            boundary: boundary.to_owned(),
            reason,
        })
    };
    if boundary.is_empty() {
        return fail("it is empty (RFC 2046 needs 1 to 70 characters)");
    }
    if boundary.len() > 70 {
        return fail("it is longer than 70 characters (RFC 2046)");
    }
    if !boundary.bytes().all(is_bchar) {
        return fail(
            "it contains a character outside RFC 2046 bchars \
             (letters, digits, space and '()+_,-./:=?)",
        );
    }
    if boundary.ends_with(' ') {
        return fail("it ends with a space (RFC 2046)");
    }
    Ok(())
}

/// RFC 7230 `tchar`: what may stand unquoted as a parameter value.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// The `Content-Type` header value for a body with this (valid) boundary; the boundary is quoted
/// only when it holds characters that a token may not (space, `(`, `)`, `,`, `/`, `:`, `=`,
/// `?`).
pub fn content_type(boundary: &str) -> String {
    if boundary.bytes().all(is_tchar) {
        format!("multipart/form-data; boundary={boundary}")
    } else {
        format!("multipart/form-data; boundary=\"{boundary}\"")
    }
}

/// Where the `--boundary` of a delimiter starts in in-memory part data (data that starts with
/// `--boundary` counts: the part header before it ends with CRLF), or `None`. Negative never
/// happens for data checked on its own.
pub fn find_delimiter(boundary: &str, data: &[u8]) -> Option<i64> {
    crate::scan::find_delimiter(boundary, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_boundaries_are_valid_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        validate(&a).unwrap();
    }

    #[test]
    fn validation_follows_rfc_2046() {
        assert!(validate("XYZXYZXYZ").is_ok());
        assert!(validate("a b").is_ok());
        assert!(validate(&"x".repeat(70)).is_ok());
        assert!(validate("").is_err());
        assert!(validate(&"x".repeat(71)).is_err());
        assert!(validate("ab ").is_err());
        assert!(validate("a\r\nb").is_err());
        assert!(validate("a\"b").is_err());
        assert!(validate("é").is_err());
    }

    #[test]
    fn content_type_quotes_only_when_needed() {
        assert_eq!(content_type("XYZ"), "multipart/form-data; boundary=XYZ");
        assert_eq!(content_type("a b"), "multipart/form-data; boundary=\"a b\"");
    }
}
