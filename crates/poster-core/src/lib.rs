//! Streaming multipart/form-data (RFC 7578) bodies with an exact Content-Length.
//!
//! A [`Form`] collects [`Part`]s: text, bytes, files named by path (measured from their
//! metadata, opened only when the stream reaches them, read with positioned reads), open files,
//! and readers of known or unknown size. [`Form::build`] validates everything, renders every
//! header and returns a [`Body`]: its [`Body::content_length`] is the sum of the very bytes the
//! stream will produce, and the stream can start at any offset ([`Body::seek`]), so a client can
//! resend it after a redirect or an auth challenge.
//!
//! ```
//! use std::io::Read;
//! use poster_core::{Form, FormOptions, Part};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("poster-core-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("hello.txt");
//! std::fs::write(&path, b"hello, world")?;
//!
//! let form = Form::new()
//!     .part(Part::text("title", "greeting"))
//!     .part(Part::file("upload", &path).content_type("text/plain"));
//! let options = FormOptions { boundary: Some("XYZXYZXYZ".into()), ..FormOptions::default() };
//! let mut body = form.build(&options)?;
//!
//! let length = body.content_length().expect("every part has a known size");
//! let mut bytes = Vec::new();
//! body.read_to_end(&mut bytes)?;
//! assert_eq!(bytes.len() as u64, length);
//! assert!(bytes.starts_with(b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"title\""));
//! assert!(bytes.ends_with(b"hello, world\r\n--XYZXYZXYZ--\r\n"));
//! assert_eq!(body.content_type(), "multipart/form-data; boundary=XYZXYZXYZ");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! Files are read with `pread`, so this crate supports Unix-like systems: Linux is tested,
//! macOS and FreeBSD compile (the few calls that differ live in one module with fallbacks).
#![deny(missing_docs)]

mod body;
pub mod boundary;
pub mod early_answer;
mod error;
pub mod escape;
mod file;
mod form;
pub mod header;
mod part;
pub mod receive;
mod scan;
pub mod send;
pub mod single;
mod sys;

// Positioned reads (`pread`) and file identities (device, inode) are Unix concepts.
#[cfg(not(unix))]
compile_error!(
    "poster-core supports Unix-like systems (Linux, macOS, BSD); Windows is not supported"
);

pub use body::{Body, FileSpan};
pub use error::{Error, FileKind, Result};
pub use escape::EscapeMode;
pub use form::{Form, FormOptions, measure_file};
pub use part::{Part, PartReader, ReadOnce, Rewindable, SharedBytes, Source};
