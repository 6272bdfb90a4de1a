//! Finding the multipart delimiter inside part data, across the edges of the chunks the data is
//! read in.

use memchr::memmem;

/// A searcher for the delimiter `CRLF--boundary`.
fn delimiter_finder(boundary: &str) -> memmem::Finder<'static> {
    let mut needle = Vec::with_capacity(boundary.len() + 4);
    needle.extend_from_slice(b"\r\n--");
    needle.extend_from_slice(boundary.as_bytes());
    memmem::Finder::new(&needle).into_owned()
}

/// Looks for `CRLF--boundary` in a part's data as it streams by. The part's header ends with
/// CRLF, so data that starts with `--boundary` is a delimiter too; the scanner starts each part
/// with that CRLF as its carried context.
pub(crate) struct DelimiterScanner {
    finder: memmem::Finder<'static>,
    /// The last `needle - 1` bytes seen, so a delimiter split across two reads is found.
    carry: Vec<u8>,
}

impl std::fmt::Debug for DelimiterScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelimiterScanner").finish_non_exhaustive()
    }
}

impl DelimiterScanner {
    pub(crate) fn new(boundary: &str) -> DelimiterScanner {
        let finder = delimiter_finder(boundary);
        DelimiterScanner {
            carry: Vec::with_capacity(finder.needle().len()),
            finder,
        }
    }

    fn context_len(&self) -> usize {
        self.finder.needle().len() - 1
    }

    /// Starts a part whose data is preceded by `preceding` (the header's CRLF, or the data
    /// before a seek position).
    pub(crate) fn start(&mut self, preceding: &[u8]) {
        let keep = preceding.len().min(self.context_len());
        self.carry.clear();
        self.carry
            .extend_from_slice(&preceding[preceding.len() - keep..]);
    }

    /// Scans the next bytes of data; returns where the `--boundary` of a delimiter starts,
    /// relative to the start of `data` (it may lie just before it, in the carried context:
    /// then the result is negative).
    pub(crate) fn scan(&mut self, data: &[u8]) -> Option<i64> {
        let context = self.context_len();
        let head = &data[..data.len().min(context)];
        let carried = self.carry.len();
        self.carry.extend_from_slice(head);
        if let Some(at) = self.finder.find(&self.carry) {
            return Some(at as i64 - carried as i64 + 2);
        }
        if let Some(at) = self.finder.find(data) {
            return Some(at as i64 + 2);
        }
        if data.len() >= context {
            self.carry.clear();
            self.carry.extend_from_slice(&data[data.len() - context..]);
        } else {
            let excess = self.carry.len().saturating_sub(context);
            self.carry.drain(..excess);
        }
        None
    }
}

/// Checks in-memory part data for the delimiter with one reusable searcher.
pub(crate) struct ValueChecker {
    finder: memmem::Finder<'static>,
}

impl ValueChecker {
    pub(crate) fn new(boundary: &str) -> ValueChecker {
        ValueChecker {
            finder: delimiter_finder(boundary),
        }
    }

    /// Where the `--boundary` of the first delimiter in `data` starts, if anywhere. The part
    /// header before the data ends with CRLF, so data starting with `--boundary` counts.
    pub(crate) fn find(&self, data: &[u8]) -> Option<u64> {
        let needle = self.finder.needle();
        if data.starts_with(&needle[2..]) {
            return Some(0);
        }
        if data.len() < needle.len() {
            return None;
        }
        self.finder.find(data).map(|at| at as u64 + 2)
    }
}

/// Where the first delimiter lies in in-memory part data, if anywhere.
pub(crate) fn find_delimiter(boundary: &str, data: &[u8]) -> Option<i64> {
    ValueChecker::new(boundary).find(data).map(|at| at as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_delimiters_anywhere() {
        assert_eq!(find_delimiter("XYZ", b"--XYZ"), Some(0));
        assert_eq!(find_delimiter("XYZ", b"ab\r\n--XYZ\r\n"), Some(4));
        assert_eq!(find_delimiter("XYZ", b"ab\n--XYZ\n"), None);
        assert_eq!(find_delimiter("XYZ", b"a--XYZ"), None);
        assert_eq!(find_delimiter("XYZ", b"\r\n--XY"), None);
    }

    #[test]
    fn finds_delimiters_across_reads() {
        let data = b"hello\r\n--BOUNDARY--\r\n";
        for split in 0..data.len() {
            let mut s = DelimiterScanner::new("BOUNDARY");
            s.start(b"\r\n");
            let first = s.scan(&data[..split]);
            let second = s.scan(&data[split..]);
            let found = first
                .or(second.map(|at| at + split as i64))
                .expect("delimiter missed");
            assert_eq!(found, 7, "split at {split}");
        }
    }

    #[test]
    fn many_tiny_reads() {
        let data = b"xx\r\n--B";
        let mut s = DelimiterScanner::new("B");
        s.start(b"\r\n");
        let mut hit = None;
        for (i, byte) in data.iter().enumerate() {
            if let Some(at) = s.scan(std::slice::from_ref(byte)) {
                hit = Some(at + i as i64);
                break;
            }
        }
        assert_eq!(hit, Some(4));
    }
}
