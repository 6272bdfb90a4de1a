//! The streaming parser: delimiters found with one `memmem` searcher, a delimiter that
//! straddles two chunks found through the few bytes held back from the first.

use memchr::memmem;

use super::FormDataError;
use super::part_headers::{Collected, PartHeaders};

/// Longest boundary accepted: RFC 2046 allows 70 characters; senders that go beyond are
/// tolerated up to this.
pub const BOUNDARY_MAX: usize = 200;

/// The limits a body is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// Parts in one body.
    pub max_parts: usize,
    /// Bytes of one part's header block: its header lines and the empty line after them.
    pub max_part_header: usize,
}

impl Default for FormLimits {
    fn default() -> FormLimits {
        FormLimits {
            max_parts: 10_000,
            max_part_header: 16 << 10,
        }
    }
}

/// What the parser found, in body order.
#[derive(Debug, Clone, Copy)]
pub enum FormEvent<'a> {
    /// A part begins; its header lines, complete.
    PartStart(&'a PartHeaders),
    /// Some of the current part's data: a slice of the chunk being fed, or of the bytes held
    /// back from the previous chunk. Consecutive events are consecutive data.
    Data(&'a [u8]),
    /// The current part's data is complete.
    PartEnd,
    /// The close delimiter: the body is complete (what follows it, the epilogue, is ignored).
    End,
}

/// Where in the body the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter: the preamble, skipped.
    Preamble,
    /// Just after `--boundary`: `--` closes the body, padding or CRLF starts a part.
    AfterBoundary,
    /// After the first `-` of a close delimiter.
    CloseDash,
    /// In the transport padding (spaces and tabs) after a delimiter.
    Padding,
    /// After the CR that ends a delimiter line.
    DelimiterCr,
    /// In a part's header block.
    Headers,
    /// In a part's data.
    Data,
    /// After the close delimiter: the epilogue, ignored.
    Epilogue,
    /// After an error: every later call reports it again.
    Failed,
}

/// A streaming multipart/form-data parser (see the module's documentation).
pub struct FormParser {
    /// Searches for `CRLF--boundary`.
    delimiter: memmem::Finder<'static>,
    limits: FormLimits,
    state: State,
    /// The end of the input seen so far that may be the start of a delimiter (always a proper
    /// prefix of it); data if the next bytes do not complete it, but for its first
    /// `held_phantom` bytes.
    held: Vec<u8>,
    held_phantom: usize,
    headers: PartHeaders,
    parts: usize,
    error: Option<FormDataError>,
}

impl std::fmt::Debug for FormParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormParser")
            .field("state", &self.state)
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

/// What scanning for a delimiter found.
enum Scan {
    /// The delimiter ends at this position of the input.
    Delimiter(usize),
    /// The input is used up.
    Exhausted,
}

impl FormParser {
    /// A parser for bodies framed with `boundary` (the value of the Content-Type's `boundary`
    /// parameter): 1 to [`BOUNDARY_MAX`] printable ASCII characters or spaces.
    pub fn new(boundary: &[u8], limits: FormLimits) -> Result<FormParser, FormDataError> {
        if boundary.is_empty() || boundary.len() > BOUNDARY_MAX {
            return Err(FormDataError::Boundary(
                "it must be 1 to 200 characters long",
            ));
        }
        // A CR or LF in it would let a delimiter overlap itself; RFC 2046 allows neither.
        if !boundary.iter().all(|&byte| (b' '..=b'~').contains(&byte)) {
            return Err(FormDataError::Boundary(
                "it must be printable ASCII characters or spaces",
            ));
        }
        let mut needle = Vec::with_capacity(boundary.len() + 4);
        needle.extend_from_slice(b"\r\n--");
        needle.extend_from_slice(boundary);
        Ok(FormParser {
            delimiter: memmem::Finder::new(&needle).into_owned(),
            limits,
            state: State::Preamble,
            // The body may open with `--boundary`: as if a CRLF came before it.
            held: b"\r\n".to_vec(),
            held_phantom: 2,
            headers: PartHeaders::default(),
            parts: 0,
            error: None,
        })
    }

    /// Parts started so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Whether the close delimiter has been seen.
    pub fn is_complete(&self) -> bool {
        self.state == State::Epilogue
    }

    /// Parses the next bytes of the body, reporting what they hold to `sink`. After an error
    /// the parser is spent: every later call returns that error again.
    pub fn feed(
        &mut self,
        input: &[u8],
        sink: &mut impl FnMut(FormEvent<'_>),
    ) -> Result<(), FormDataError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        self.parse(input, sink).inspect_err(|error| {
            self.state = State::Failed;
            self.error = Some(error.clone());
        })
    }

    /// Ends the body: an error unless its close delimiter has been seen.
    pub fn finish(&mut self) -> Result<(), FormDataError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        if self.state == State::Epilogue {
            return Ok(());
        }
        self.state = State::Failed;
        self.error = Some(FormDataError::Truncated);
        Err(FormDataError::Truncated)
    }

    fn parse(
        &mut self,
        input: &[u8],
        sink: &mut impl FnMut(FormEvent<'_>),
    ) -> Result<(), FormDataError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Preamble | State::Data => {
                    let in_part = self.state == State::Data;
                    let mut emit = |data: &[u8]| {
                        if in_part && !data.is_empty() {
                            sink(FormEvent::Data(data));
                        }
                    };
                    match self.scan(input, pos, &mut emit) {
                        Scan::Exhausted => return Ok(()),
                        Scan::Delimiter(end) => {
                            pos = end;
                            if in_part {
                                sink(FormEvent::PartEnd);
                            }
                            self.state = State::AfterBoundary;
                        }
                    }
                }
                State::Headers => match self
                    .headers
                    .collect(&input[pos..], self.limits.max_part_header)?
                {
                    Collected::More => return Ok(()),
                    Collected::Complete(used) => {
                        pos += used;
                        sink(FormEvent::PartStart(&self.headers));
                        self.state = State::Data;
                        if self.headers.is_empty() {
                            // `--b CRLF CRLF --b`: a part without headers or data, its CRLF
                            // the next delimiter's (RFC 2046's body-part is headers, then
                            // CRLF and data only if there is data).
                            self.held.extend_from_slice(b"\r\n");
                            self.held_phantom = 2;
                        }
                    }
                },
                State::Epilogue => return Ok(()),
                State::Failed => unreachable!("feed returns the stored error first"),
                _ => {
                    self.delimiter_line(input[pos])?;
                    pos += 1;
                    if self.state == State::Epilogue {
                        sink(FormEvent::End);
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes one byte of what follows `--boundary`: `--`, or transport padding and CRLF.
    fn delimiter_line(&mut self, byte: u8) -> Result<(), FormDataError> {
        self.state = match (self.state, byte) {
            (State::AfterBoundary, b'-') => State::CloseDash,
            (State::CloseDash, b'-') => State::Epilogue,
            (State::AfterBoundary | State::Padding, b' ' | b'\t') => State::Padding,
            (State::AfterBoundary | State::Padding, b'\r') => State::DelimiterCr,
            (State::DelimiterCr, b'\n') => {
                if self.parts >= self.limits.max_parts {
                    return Err(FormDataError::TooManyParts(self.limits.max_parts));
                }
                self.parts += 1;
                self.headers.clear();
                State::Headers
            }
            (State::CloseDash, _) => {
                return Err(FormDataError::Malformed(
                    "a delimiter is followed by a single '-'",
                ));
            }
            (State::DelimiterCr, _) => {
                return Err(FormDataError::Malformed("a delimiter line ends without LF"));
            }
            _ => {
                return Err(FormDataError::Malformed(
                    "a delimiter is followed by neither CRLF nor \"--\" (is the boundary \
                     inside the data?)",
                ));
            }
        };
        Ok(())
    }

    /// Looks for the next delimiter from `pos`, passing the data before it to `emit`; at the
    /// end of the input, holds back what may be the start of a delimiter.
    fn scan(&mut self, input: &[u8], mut pos: usize, emit: &mut impl FnMut(&[u8])) -> Scan {
        let needle = self.delimiter.needle();
        if !self.held.is_empty() {
            // The needle has its only CR at its start, so a delimiter that begins in the held
            // bytes begins at their start.
            let wanted = &needle[self.held.len()..];
            let take = wanted.len().min(input.len() - pos);
            if input[pos..pos + take] == wanted[..take] {
                if take == wanted.len() {
                    self.held.clear();
                    self.held_phantom = 0;
                    return Scan::Delimiter(pos + take);
                }
                self.held.extend_from_slice(&input[pos..]);
                return Scan::Exhausted;
            }
            emit(&self.held[self.held_phantom..]);
            self.held.clear();
            self.held_phantom = 0;
        }
        let rest = &input[pos..];
        if let Some(at) = self.delimiter.find(rest) {
            emit(&rest[..at]);
            return Scan::Delimiter(pos + at + needle.len());
        }
        // The longest end of the input that begins the needle (at a CR, its first byte).
        let window = rest.len().saturating_sub(needle.len() - 1);
        let held_from = memchr::memchr_iter(b'\r', &rest[window..])
            .map(|at| window + at)
            .find(|&at| needle.starts_with(&rest[at..]))
            .unwrap_or(rest.len());
        emit(&rest[..held_from]);
        self.held.extend_from_slice(&rest[held_from..]);
        pos += rest.len();
        debug_assert_eq!(pos, input.len());
        Scan::Exhausted
    }
}

#[cfg(test)]
mod tests {
    use super::{FormDataError, FormEvent, FormLimits, FormParser};

    /// What a parser reported, owned; consecutive data joined (chunking may split it anyhow).
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Part(Vec<(Vec<u8>, Vec<u8>)>),
        Data(Vec<u8>),
        PartEnd,
        End,
    }

    fn record(seen: &mut Vec<Seen>, event: FormEvent<'_>) {
        match event {
            FormEvent::PartStart(headers) => seen.push(Seen::Part(
                headers
                    .iter()
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect(),
            )),
            FormEvent::Data(data) => {
                assert!(!data.is_empty(), "no empty data events");
                if let Some(Seen::Data(previous)) = seen.last_mut() {
                    previous.extend_from_slice(data);
                } else {
                    seen.push(Seen::Data(data.to_vec()));
                }
            }
            FormEvent::PartEnd => seen.push(Seen::PartEnd),
            FormEvent::End => seen.push(Seen::End),
        }
    }

    /// Parses `body` fed in the pieces that `splits` (ascending positions) cut it into.
    fn parse_split(
        boundary: &[u8],
        limits: FormLimits,
        body: &[u8],
        splits: &[usize],
    ) -> Result<Vec<Seen>, FormDataError> {
        let mut parser = FormParser::new(boundary, limits)?;
        let mut seen = Vec::new();
        let mut start = 0;
        for &end in splits.iter().chain([&body.len()]) {
            parser.feed(&body[start..end], &mut |event| record(&mut seen, event))?;
            start = end;
        }
        parser.finish()?;
        Ok(seen)
    }

    /// The outcome of parsing `body`, checked to be the same however the body is chunked:
    /// whole, byte by byte, and cut in two at every position.
    fn parse(boundary: &[u8], limits: FormLimits, body: &[u8]) -> Result<Vec<Seen>, FormDataError> {
        let whole = parse_split(boundary, limits, body, &[]);
        let bytewise: Vec<usize> = (1..body.len()).collect();
        assert_eq!(
            parse_split(boundary, limits, body, &bytewise),
            whole,
            "byte by byte"
        );
        for cut in 0..=body.len() {
            assert_eq!(
                parse_split(boundary, limits, body, &[cut]),
                whole,
                "cut at {cut}"
            );
        }
        whole
    }

    fn header(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
        (name.as_bytes().to_vec(), value.as_bytes().to_vec())
    }

    const TWO_PARTS: &[u8] = b"--XyZ\r\n\
        Content-Disposition: form-data; name=\"title\"\r\n\
        \r\n\
        hello\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\
        Content-Type:   application/octet-stream \r\n\
        \r\n\
        \r\n--Xy\r\nx--XyZ\r\r\n\r\n-\r\n\
        --XyZ--\r\n";

    #[test]
    fn parts_headers_and_data_whatever_the_chunking() {
        let seen = parse(b"XyZ", FormLimits::default(), TWO_PARTS).unwrap();
        assert_eq!(
            seen,
            [
                Seen::Part(vec![header(
                    "Content-Disposition",
                    "form-data; name=\"title\""
                )]),
                Seen::Data(b"hello".to_vec()),
                Seen::PartEnd,
                Seen::Part(vec![
                    header(
                        "Content-Disposition",
                        "form-data; name=\"f\"; filename=\"a.bin\""
                    ),
                    header("Content-Type", "application/octet-stream"),
                ]),
                // Near-delimiters are data: "\r\n--Xy" + "\r\n" is not "\r\n--XyZ", and
                // "--XyZ" is preceded by no CRLF.
                Seen::Data(b"\r\n--Xy\r\nx--XyZ\r\r\n\r\n-".to_vec()),
                Seen::PartEnd,
                Seen::End,
            ]
        );
    }

    #[test]
    fn preamble_padding_epilogue_and_empty_parts() {
        let body = b"ignored preamble\r\n--b\r\n\r\n--b \t\r\n\r\n\r\n\r\n--b\r\nX: 1\r\n\r\n\r\n--b--\t epilogue";
        let seen = parse(b"b", FormLimits::default(), body).unwrap();
        assert_eq!(
            seen,
            [
                Seen::Part(vec![]),
                Seen::PartEnd,
                Seen::Part(vec![]),
                // The CRLF before a delimiter belongs to it: the data is one CRLF.
                Seen::Data(b"\r\n".to_vec()),
                Seen::PartEnd,
                Seen::Part(vec![header("X", "1")]),
                Seen::PartEnd,
                Seen::End,
            ]
        );
        // A preamble that looks like a delimiter but is not one.
        let body = b"--bb\r\n-\r\n--b\r\n\r\nv\r\n--b--";
        let seen = parse(b"b", FormLimits::default(), body);
        assert_eq!(
            seen.unwrap_err(),
            FormDataError::Malformed(
                "a delimiter is followed by neither CRLF nor \"--\" (is the boundary inside \
                 the data?)"
            ),
        );
        let body = b"x--b\r\n-\r\n--b\r\n\r\nv\r\n--b--";
        let seen = parse(b"b", FormLimits::default(), body).unwrap();
        assert_eq!(
            seen,
            [
                Seen::Part(vec![]),
                Seen::Data(b"v".to_vec()),
                Seen::PartEnd,
                Seen::End
            ]
        );
    }

    #[test]
    fn data_events_borrow_the_input() {
        let mut parser = FormParser::new(b"b", FormLimits::default()).unwrap();
        let mut seen = Vec::new();
        parser.feed(b"--b\r\n\r\n", &mut |_| {}).unwrap();
        let chunk = vec![b'x'; 1000];
        parser
            .feed(&chunk, &mut |event| {
                if let FormEvent::Data(data) = event {
                    seen.push((data.as_ptr(), data.len()));
                }
            })
            .unwrap();
        assert_eq!(seen, [(chunk.as_ptr(), 1000)]);
    }

    #[test]
    fn a_body_without_its_close_delimiter_is_refused() {
        for body in [
            &b""[..],
            b"preamble only",
            b"--b",
            b"--b\r\n",
            b"--b\r\nX: 1\r\n",
            b"--b\r\n\r\ndata",
            b"--b\r\n\r\ndata\r\n--b",
            b"--b\r\n\r\ndata\r\n--b-",
            b"--b\r\n\r\ndata\r\n--b\r\n",
        ] {
            assert_eq!(
                parse(b"b", FormLimits::default(), body),
                Err(FormDataError::Truncated),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for (body, why) in [
            (
                &b"--b\r\nX: 1\n\r\n--b--"[..],
                "a part header line ends without CR",
            ),
            (
                b"--b\r\nX: 1\r\n folded\r\n\r\n--b--",
                "a folded part header line (RFC 7578 section 4.8)",
            ),
            (
                b"--b\r\nno colon\r\n\r\n--b--",
                "a part header line without a colon",
            ),
            (
                b"--b\r\n: v\r\n\r\n--b--",
                "a part header name is not a token",
            ),
            (
                b"--b\r\nA B: v\r\n\r\n--b--",
                "a part header name is not a token",
            ),
            (
                b"--b\r\nA: v\rw\r\n\r\n--b--",
                "a part header line holds a CR or NUL",
            ),
            (
                b"--b\r\n\r\nv\r\n--b-x",
                "a delimiter is followed by a single '-'",
            ),
            (
                b"--b\r\n\r\nv\r\n--b\rx",
                "a delimiter line ends without LF",
            ),
            (
                b"--b \t-\r\n",
                "a delimiter is followed by neither CRLF nor \"--\" (is the boundary inside the data?)",
            ),
            (
                b"--b\n\r\n",
                "a delimiter is followed by neither CRLF nor \"--\" (is the boundary inside the data?)",
            ),
        ] {
            assert_eq!(
                parse(b"b", FormLimits::default(), body),
                Err(FormDataError::Malformed(why)),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_error_is_final() {
        let mut parser = FormParser::new(b"b", FormLimits::default()).unwrap();
        let error = parser.feed(b"--bx", &mut |_| {}).unwrap_err();
        assert_eq!(parser.feed(b"\r\n--b--", &mut |_| {}), Err(error.clone()));
        assert_eq!(parser.finish(), Err(error));
    }

    #[test]
    fn the_limits_hold_however_the_body_is_chunked() {
        let limits = FormLimits {
            max_parts: 2,
            max_part_header: 20,
        };
        let two = b"--b\r\nA: 1\r\n\r\n\r\n--b\r\nA: 2\r\n\r\n\r\n--b--";
        assert_eq!(parse(b"b", limits, two).unwrap().len(), 5);
        let three = b"--b\r\n\r\n\r\n--b\r\n\r\n\r\n--b\r\n\r\n\r\n--b--";
        assert_eq!(
            parse(b"b", limits, three),
            Err(FormDataError::TooManyParts(2))
        );
        // 16 bytes of header block, then 20, then 21.
        let block = |value: &str| format!("--b\r\nName: {value}\r\n\r\nv\r\n--b--").into_bytes();
        assert!(parse(b"b", limits, &block("123456")).is_ok());
        assert!(parse(b"b", limits, &block("1234567890")).is_ok());
        assert_eq!(
            parse(b"b", limits, &block("12345678901")),
            Err(FormDataError::HeadersTooLarge(20))
        );
        // A header block that never ends is refused at the limit, not buffered.
        let mut parser = FormParser::new(b"b", limits).unwrap();
        parser.feed(b"--b\r\n", &mut |_| {}).unwrap();
        let endless = parser.feed(&[b'a'; 100], &mut |_| {});
        assert_eq!(endless, Err(FormDataError::HeadersTooLarge(20)));
        assert!(FormDataError::HeadersTooLarge(20).is_limit());
        assert!(!FormDataError::Truncated.is_limit());
    }

    #[test]
    fn unusable_boundaries_are_refused() {
        for boundary in [&b""[..], b"a\r\nb", b"caf\xc3\xa9", &[b'a'; 201]] {
            assert!(matches!(
                FormParser::new(boundary, FormLimits::default()),
                Err(FormDataError::Boundary(_))
            ));
        }
        assert!(FormParser::new(&[b'a'; 200], FormLimits::default()).is_ok());
        assert!(FormParser::new(b"'()+_,-./:=? a", FormLimits::default()).is_ok());
    }

    #[test]
    fn what_the_encoder_sends_is_received_as_sent() {
        use std::io::Read;

        use crate::{Form, FormOptions, Part};

        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let form = Form::new()
            .part(Part::text("title", "r\u{e9}sum\u{e9}"))
            .part(Part::bytes("upload", data.clone()).filename("a.bin"));
        let options = FormOptions {
            boundary: Some("b0und4ry".into()),
            ..FormOptions::default()
        };
        let mut body = Vec::new();
        form.build(&options)
            .unwrap()
            .read_to_end(&mut body)
            .unwrap();
        let splits: Vec<usize> = (1..body.len()).step_by(97).collect();
        let seen = parse_split(b"b0und4ry", FormLimits::default(), &body, &splits).unwrap();
        assert_eq!(seen.len(), 7);
        assert_eq!(seen[1], Seen::Data("r\u{e9}sum\u{e9}".as_bytes().to_vec()));
        assert_eq!(seen[4], Seen::Data(data));
        assert_eq!(seen[6], Seen::End);
    }

    mod property {
        use proptest::prelude::*;

        use super::{FormLimits, Seen, parse_split};

        /// Data made of the bytes a delimiter is made of, so near-delimiters are common.
        fn data() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(prop::sample::select(&b"\r\n-bBx"[..]), 0..40)
        }

        proptest! {
            #[test]
            fn any_parts_any_chunking(
                parts in prop::collection::vec(data(), 0..5),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            ) {
                let boundary = b"bB-b";
                let mut body = b"pre\r\n-".to_vec();
                let mut expected = Vec::new();
                for value in &parts {
                    // A part's data never holds its delimiter: a sender picks the boundary so.
                    let mut framed = b"\r\n".to_vec();
                    framed.extend_from_slice(value);
                    prop_assume!(memchr::memmem::find(&[&framed[..], b"\r\n"].concat(), b"\r\n--bB-b").is_none());
                    body.extend_from_slice(b"\r\n--bB-b\r\nN: v\r\n\r\n");
                    body.extend_from_slice(value);
                    expected.push(Seen::Part(vec![(b"N".to_vec(), b"v".to_vec())]));
                    if !value.is_empty() {
                        expected.push(Seen::Data(value.clone()));
                    }
                    expected.push(Seen::PartEnd);
                }
                body.extend_from_slice(b"\r\n--bB-b--\r\n");
                expected.push(Seen::End);
                let mut splits: Vec<usize> = cuts.iter().map(|cut| cut.index(body.len() + 1)).collect();
                splits.sort_unstable();
                prop_assert_eq!(parse_split(boundary, FormLimits::default(), &body, &splits).unwrap(), expected);
            }
        }
    }
}
