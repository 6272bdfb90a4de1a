//! The header lines of one received part, collected as they stream in.

use std::ops::Range;

use super::FormDataError;

/// One part's header block (the lines between its delimiter and the empty line), kept while
/// the part starts; reused from part to part.
#[derive(Debug, Default)]
pub struct PartHeaders {
    block: Vec<u8>,
    /// Where the line being collected starts in `block`.
    line_start: usize,
    /// The name and the value (without surrounding spaces) of each complete line.
    lines: Vec<(Range<usize>, Range<usize>)>,
}

/// What collecting part of a header block found.
pub(super) enum Collected {
    /// The block goes on past these bytes.
    More,
    /// The empty line that ends the block ends this many bytes into the input.
    Complete(usize),
}

impl PartHeaders {
    pub(super) fn clear(&mut self) {
        self.block.clear();
        self.line_start = 0;
        self.lines.clear();
    }

    /// Whether the part has no header lines.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The `(name, value)` of each header line, in order, as sent (names in their own case,
    /// values without the spaces around them).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.lines
            .iter()
            .map(|(name, value)| (&self.block[name.clone()], &self.block[value.clone()]))
    }

    /// Takes header bytes from the start of `input`, up to the empty line that ends the block
    /// if it is there; `max_bytes` bounds the whole block, final empty line included.
    pub(super) fn collect(
        &mut self,
        input: &[u8],
        max_bytes: usize,
    ) -> Result<Collected, FormDataError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            let (piece, line_complete) = match memchr::memchr(b'\n', rest) {
                Some(at) => (&rest[..=at], true),
                None => (rest, false),
            };
            if self.block.len() + piece.len() > max_bytes {
                return Err(FormDataError::HeadersTooLarge(max_bytes));
            }
            self.block.extend_from_slice(piece);
            pos += piece.len();
            if !line_complete {
                return Ok(Collected::More);
            }
            let line = self.line_start..self.block.len();
            self.line_start = self.block.len();
            if self.block[line.clone()] == *b"\r\n" {
                return Ok(Collected::Complete(pos));
            }
            let parsed = self.parse_line(line)?;
            self.lines.push(parsed);
        }
    }

    /// The name and value ranges of the complete line at `line` (its CRLF included).
    fn parse_line(
        &self,
        line: Range<usize>,
    ) -> Result<(Range<usize>, Range<usize>), FormDataError> {
        let text = &self.block[line.clone()];
        if !text.ends_with(b"\r\n") {
            return Err(FormDataError::Malformed(
                "a part header line ends without CR",
            ));
        }
        let text = &text[..text.len() - 2];
        if matches!(text.first(), Some(b' ' | b'\t')) {
            return Err(FormDataError::Malformed(
                "a folded part header line (RFC 7578 section 4.8)",
            ));
        }
        let Some(colon) = memchr::memchr(b':', text) else {
            return Err(FormDataError::Malformed(
                "a part header line without a colon",
            ));
        };
        if colon == 0 || !text[..colon].iter().all(|&byte| is_token(byte)) {
            return Err(FormDataError::Malformed(
                "a part header name is not a token",
            ));
        }
        if text.iter().any(|&byte| byte == b'\r' || byte == 0) {
            return Err(FormDataError::Malformed(
                "a part header line holds a CR or NUL",
            ));
        }
        let mut value = colon + 1..text.len();
        while value.start < value.end && matches!(text[value.start], b' ' | b'\t') {
            value.start += 1;
        }
        while value.end > value.start && matches!(text[value.end - 1], b' ' | b'\t') {
            value.end -= 1;
        }
        let offset = line.start;
        Ok((
            offset..offset + colon,
            offset + value.start..offset + value.end,
        ))
    }
}

/// A `tchar` of RFC 9110: the characters of a header name.
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}
