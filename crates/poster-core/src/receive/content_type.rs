//! The boundary of a received body, from its `Content-Type` header.

use std::borrow::Cow;

/// The `boundary` parameter of a `multipart/form-data` Content-Type value (RFC 9110 syntax:
/// case-insensitive type and parameter names, a token or a quoted string as the value); `None`
/// for another media type or without a non-empty boundary. A parameter's value is not checked
/// here: [`FormParser::new`](super::FormParser::new) does that.
pub fn form_boundary(content_type: &[u8]) -> Option<Cow<'_, [u8]>> {
    let (media_type, mut params) = match memchr::memchr(b';', content_type) {
        Some(at) => (&content_type[..at], &content_type[at..]),
        None => (content_type, &b""[..]),
    };
    if !media_type
        .trim_ascii()
        .eq_ignore_ascii_case(b"multipart/form-data")
    {
        return None;
    }
    let mut boundary = None;
    // Each round takes one "; name=value" from the front of `params`.
    while let Some(rest) = params.strip_prefix(b";") {
        let rest = rest.trim_ascii_start();
        let Some(equals) = memchr::memchr(b'=', rest) else {
            break;
        };
        let name = rest[..equals].trim_ascii();
        let after = rest[equals + 1..].trim_ascii_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix(b"\"") {
            unquote(quoted)?
        } else {
            let end = memchr::memchr(b';', after).unwrap_or(after.len());
            (Cow::Borrowed(after[..end].trim_ascii()), &after[end..])
        };
        if name.eq_ignore_ascii_case(b"boundary") {
            if boundary.is_some() {
                return None; // two boundaries: which one the sender meant is anyone's guess
            }
            boundary = Some(value);
        }
        params = remainder.trim_ascii_start();
    }
    boundary.filter(|value| !value.is_empty())
}

/// A quoted string's value (from just after its opening quote) and what follows its closing
/// quote; `None` if it is not closed.
fn unquote(quoted: &[u8]) -> Option<(Cow<'_, [u8]>, &[u8])> {
    let end = memchr::memchr2(b'"', b'\\', quoted)?;
    if quoted[end] == b'"' {
        return Some((Cow::Borrowed(&quoted[..end]), &quoted[end + 1..]));
    }
    let mut value = quoted[..end].to_vec();
    let mut pos = end;
    loop {
        match quoted.get(pos)? {
            b'"' => return Some((Cow::Owned(value), &quoted[pos + 1..])),
            b'\\' => {
                value.push(*quoted.get(pos + 1)?);
                pos += 2;
            }
            &byte => {
                value.push(byte);
                pos += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::form_boundary;

    fn boundary(value: &str) -> Option<String> {
        form_boundary(value.as_bytes()).map(|b| String::from_utf8(b.into_owned()).unwrap())
    }

    #[test]
    fn the_boundary_of_a_form() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary(" Multipart/Form-Data ;charset=utf-8;  BOUNDARY = \"a b;c\" ").as_deref(),
            Some("a b;c")
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a\\\"b\\\\c\"; x=y").as_deref(),
            Some("a\"b\\c")
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=abc ; x=\"q;boundary=no\"").as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn no_boundary() {
        for value in [
            "",
            "text/plain; boundary=abc",
            "multipart/mixed; boundary=abc",
            "multipart/form-data",
            "multipart/form-data; charset=utf-8",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=\"abc",
            "multipart/form-data; boundary=a; boundary=b",
        ] {
            assert_eq!(boundary(value), None, "{value:?}");
        }
    }
}
