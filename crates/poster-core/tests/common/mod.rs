//! Helpers shared by the integration tests: temporary directories, body readers, parts.
#![allow(dead_code)]

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use poster_core::{Body, EscapeMode, FormOptions, Part, Rewindable, Source};

/// A directory under the system temp dir, unique to this process and call, removed on drop.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "poster-core-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `data` to a new file `name` in the directory and returns its path.
    pub(crate) fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, data).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Options with a fixed boundary and escape mode.
pub(crate) fn options(boundary: &str, escape: EscapeMode) -> FormOptions {
    FormOptions {
        boundary: Some(boundary.to_owned()),
        escape,
        ..FormOptions::default()
    }
}

/// Reads the rest of the body with `Read::read_to_end`.
pub(crate) fn read_all(body: &mut Body) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    body.read_to_end(&mut out)?;
    Ok(out)
}

/// Reads the rest of the body through `Body::fill` with a buffer of `size` bytes, returning the
/// first error as a `poster_core::Error`.
pub(crate) fn fill_all(body: &mut Body, size: usize) -> poster_core::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; size];
    loop {
        let n = body.fill(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// A rewindable in-memory reader of known length: a file-like source, not an in-memory value.
pub(crate) fn reader_source(data: &[u8]) -> Source {
    Source::Reader {
        reader: Box::new(Rewindable::new(Cursor::new(data.to_vec())).expect("cursor position")),
        len: Some(data.len() as u64),
    }
}

/// A part whose data comes from a rewindable reader of known length.
pub(crate) fn reader_part(name: &str, data: &[u8]) -> Part {
    Part::new(name, reader_source(data))
}

/// Finds the first occurrence of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
