//! One part on its own, outside a body: what poster's `MultipartParam.encode`, `iter_encode` and
//! `get_size` produce (the part's header, its data, and the CRLF that ends the data).

use crate::boundary;
use crate::error::{Error, Result};
use crate::escape::EscapeMode;
use crate::header::{self, PartHead};
use crate::scan::DelimiterScanner;

/// The bytes that end every part's data (the next delimiter starts after them).
pub const PART_END: &[u8] = b"\r\n";

/// The header block of a part (`--B CRLF ... CRLF CRLF`), after checking the boundary and
/// everything in the header that cannot be escaped.
pub fn header(boundary: &str, head: &PartHead<'_>, mode: EscapeMode) -> Result<Vec<u8>> {
    boundary::validate(boundary)?;
    header::validate(head)?;
    let mut out = Vec::with_capacity(128 + head.name.len());
    header::render(&mut out, boundary, head, mode);
    Ok(out)
}

/// How many bytes a part takes: its header, `data_len` bytes of data and [`PART_END`].
pub fn encoded_len(
    boundary: &str,
    head: &PartHead<'_>,
    mode: EscapeMode,
    data_len: u64,
) -> Result<u64> {
    Ok(header(boundary, head, mode)?.len() as u64 + data_len + PART_END.len() as u64)
}

/// The whole part: header, `data`, [`PART_END`]. Refuses data that contains the delimiter.
pub fn encode(
    boundary: &str,
    head: &PartHead<'_>,
    mode: EscapeMode,
    data: &[u8],
) -> Result<Vec<u8>> {
    let mut out = header(boundary, head, mode)?;
    if let Some(offset) = boundary::find_delimiter(boundary, data) {
        return Err(Error::BoundaryInData {
            part: head.name.to_owned(),
            offset: offset.max(0).unsigned_abs(),
        });
    }
    out.reserve(data.len() + PART_END.len());
    out.extend_from_slice(data);
    out.extend_from_slice(PART_END);
    Ok(out)
}

/// Checks a part's data for the delimiter block by block, as it is produced.
#[derive(Debug)]
pub struct DataChecker {
    scanner: DelimiterScanner,
    part: String,
    seen: u64,
}

impl DataChecker {
    /// A checker for the data of part `part` under `boundary` (which it validates).
    pub fn new(boundary: &str, part: &str) -> Result<DataChecker> {
        boundary::validate(boundary)?;
        let mut scanner = DelimiterScanner::new(boundary);
        // The header ends with CRLF: data starting with `--boundary` is a delimiter too.
        scanner.start(b"\r\n");
        Ok(DataChecker {
            scanner,
            part: part.to_owned(),
            seen: 0,
        })
    }

    /// Checks the next block of data.
    pub fn check(&mut self, block: &[u8]) -> Result<()> {
        if let Some(at) = self.scanner.scan(block) {
            return Err(Error::BoundaryInData {
                part: self.part.clone(),
                offset: self.seen.saturating_add_signed(at),
            });
        }
        self.seen += block.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(name: &str) -> PartHead<'_> {
        PartHead {
            name,
            filename: None,
            content_type: None,
            headers: &[],
            is_file: false,
        }
    }

    #[test]
    fn encoded_len_counts_what_encode_produces() {
        let data = b"hello";
        let whole = encode("XYZ", &head("f"), EscapeMode::Quoted, data).unwrap();
        let len = encoded_len("XYZ", &head("f"), EscapeMode::Quoted, data.len() as u64).unwrap();
        assert_eq!(whole.len() as u64, len);
        assert!(whole.ends_with(b"hello\r\n"));
    }

    #[test]
    fn encode_refuses_the_delimiter_in_data() {
        let err = encode("XYZ", &head("f"), EscapeMode::Quoted, b"a\r\n--XYZ").unwrap_err();
        assert!(
            matches!(err, Error::BoundaryInData { offset: 3, .. }),
            "{err:?}"
        );
        assert!(encode("bad ", &head("f"), EscapeMode::Quoted, b"").is_err());
    }

    #[test]
    fn checker_finds_a_delimiter_split_across_blocks() {
        let data = b"abc\r\n--XYZ--";
        for split in 0..data.len() {
            let mut checker = DataChecker::new("XYZ", "f").unwrap();
            let result = checker
                .check(&data[..split])
                .and_then(|()| checker.check(&data[split..]));
            match result {
                Err(Error::BoundaryInData { offset, .. }) => assert_eq!(offset, 5, "split {split}"),
                other => panic!("split {split}: {other:?}"),
            }
        }
        let mut start = DataChecker::new("XYZ", "f").unwrap();
        assert!(start.check(b"--XYZ").is_err());
        let mut clean = DataChecker::new("XYZ", "f").unwrap();
        assert!(clean.check(b"no delimiter\r\n--XY").is_ok());
    }
}
