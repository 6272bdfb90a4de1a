//! The reader strategy: data from a [`PartReader`] (a pipe, a host-language file object), which
//! can only move forward, rewind to its start, and may or may not know its size.

use std::io;

use super::fill_buf::FillBuf;
use crate::error::{Error, Result};
use crate::part::PartReader;
use crate::scan::DelimiterScanner;

/// A reader part's data.
pub(crate) struct ReaderData {
    pub(crate) part: String,
    pub(crate) reader: Box<dyn PartReader>,
    pub(crate) len: Option<u64>,
    /// Whether any byte has been read since the last rewind.
    pub(crate) touched: bool,
}

/// What one fill got from a reader.
pub(super) struct Filled {
    pub(super) len: usize,
    /// The reader's data is complete.
    pub(super) done: bool,
    /// A reader of unknown size returned what it had: hand it out rather than wait for more.
    pub(super) hand_out: bool,
}

impl ReaderData {
    fn io_error(&self, source: io::Error) -> Error {
        Error::Io {
            path: None,
            part: self.part.clone(),
            source,
        }
    }

    fn read_retrying(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.reader.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other.map_err(|e| self.io_error(e)),
            }
        }
    }

    /// Rewinds the reader if it has been read from, so the stream can start it over.
    pub(super) fn rewind(&mut self) -> Result<()> {
        if self.touched {
            self.reader.rewind().map_err(|e| Error::NotSeekable {
                reason: format!("part {:?}: its reader cannot rewind: {e}", self.part),
            })?;
            self.touched = false;
        }
        Ok(())
    }

    /// Reads the next bytes (those from byte `at`) into `buf[start..]`. A reader of known size
    /// fills the space (and is checked to end exactly at its size); one of unknown size returns
    /// after its first non-empty read.
    pub(super) fn fill<B: FillBuf + ?Sized>(
        &mut self,
        at: u64,
        buf: &mut B,
        start: usize,
        scratch: &mut Vec<u8>,
        mut scanner: Option<&mut DelimiterScanner>,
    ) -> Result<Filled> {
        if at == 0
            && !self.touched
            && let Some(scanner) = scanner.as_deref_mut()
        {
            scanner.start(b"\r\n");
        }
        let space = buf.capacity() - start;
        let want = match self.len {
            Some(len) => (len - at).min(space as u64) as usize,
            None => space,
        };
        self.touched = true;
        let mut n = 0;
        while n < want {
            let reader = &mut self.reader;
            let read = buf.read_with(start + n, want - n, scratch, &mut |s| loop {
                match reader.read(s) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => return other,
                }
            });
            let read = read.map_err(|e| self.io_error(e))?;
            if read.is_empty() {
                break;
            }
            if let Some(scanner) = scanner.as_deref_mut()
                && let Some(found) = scanner.scan(read)
            {
                return Err(Error::BoundaryInData {
                    part: self.part.clone(),
                    offset: ((at + n as u64) as i64 + found).max(0) as u64,
                });
            }
            n += read.len();
            if self.len.is_none() {
                return Ok(Filled {
                    len: n,
                    done: false,
                    hand_out: true,
                });
            }
        }
        let Some(len) = self.len else {
            return Ok(Filled {
                len: n,
                done: n == 0,
                hand_out: false,
            });
        };
        let reached = at + n as u64;
        if reached < len {
            if n < want {
                return Err(Error::SizeChanged {
                    part: self.part.clone(),
                    path: None,
                    expected: len,
                    actual: reached,
                });
            }
            return Ok(Filled {
                len: n,
                done: false,
                hand_out: false,
            });
        }
        // At its size: the reader must be at its end too.
        let extra = self.read_retrying(&mut [0u8; 1])?;
        if extra > 0 {
            return Err(Error::SizeChanged {
                part: self.part.clone(),
                path: None,
                expected: len,
                actual: len + extra as u64,
            });
        }
        Ok(Filled {
            len: n,
            done: true,
            hand_out: false,
        })
    }

    /// After a seek to byte `at` inside the reader's data: skips to it, and gives the scanner
    /// the last `context` bytes skipped, so a delimiter straddling the position is still found.
    pub(super) fn resume(
        &mut self,
        at: u64,
        context: usize,
        scanner: Option<&mut DelimiterScanner>,
    ) -> Result<()> {
        let mut scratch = vec![0u8; 64 * 1024];
        // "\r\n" (the header's end) plus the last skipped bytes.
        let mut preceding = b"\r\n".to_vec();
        let mut left = at;
        self.touched = true;
        while left > 0 {
            let want = scratch.len().min(left as usize);
            let n = self.read_retrying(&mut scratch[..want])?;
            if n == 0 {
                return Err(Error::SizeChanged {
                    part: self.part.clone(),
                    path: None,
                    expected: self.len.unwrap_or(0),
                    actual: at - left,
                });
            }
            preceding.extend_from_slice(&scratch[..n]);
            if preceding.len() > 2 * context {
                preceding.drain(..preceding.len() - context);
            }
            left -= n as u64;
        }
        if let Some(scanner) = scanner {
            scanner.start(&preceding);
        }
        Ok(())
    }
}
