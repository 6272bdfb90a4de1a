//! Recognising a server's final answer that arrives while the body is still going out (a 413,
//! a 401, a redirect): interim `1xx` responses (`100 Continue`, `103 Early Hints`) before it do
//! not count, and must not be taken for it.

/// Drops complete interim (`1xx`) responses from the start of `data`. Returns what is left and
/// whether that is known to be the start of a final response (`false` while it may still be an
/// incomplete interim response).
pub fn strip_interim(mut data: &[u8]) -> (&[u8], bool) {
    loop {
        if data.len() < 12 {
            return (data, false);
        }
        if !(data.starts_with(b"HTTP/") && data[9] == b'1') {
            return (data, true);
        }
        let Some(end) = memchr::memmem::find(data, b"\r\n\r\n") else {
            return (data, false);
        };
        data = &data[end + 4..];
        if data.is_empty() {
            return (data, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_interim;

    #[test]
    fn interim_responses_are_dropped_and_a_final_one_is_recognised() {
        let final_only = b"HTTP/1.1 413 Payload Too Large\r\n\r\n";
        assert_eq!(strip_interim(final_only), (&final_only[..], true));
        let both = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n";
        assert_eq!(
            strip_interim(both),
            (&b"HTTP/1.1 201 Created\r\n"[..], true)
        );
        let hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert!(strip_interim(hints).1);
    }

    #[test]
    fn incomplete_data_is_not_yet_an_answer() {
        assert_eq!(strip_interim(b"HTTP/1.1 4"), (&b"HTTP/1.1 4"[..], false));
        let partial = b"HTTP/1.1 100 Continue\r\n";
        assert_eq!(strip_interim(partial), (&partial[..], false));
        assert_eq!(
            strip_interim(b"HTTP/1.1 100 Continue\r\n\r\n"),
            (&b""[..], false)
        );
    }

    #[test]
    fn anything_else_is_a_final_answer() {
        // Not HTTP at all (a server that closes with garbage) still stops the upload.
        assert!(strip_interim(b"garbage garbage").1);
    }
}
