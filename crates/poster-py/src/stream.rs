//! `Stream`: the encoded body as a Python iterator of large `bytes` chunks, sized, seekable and
//! closable. The Python package subclasses it as `poster_rs.MultipartStream`.

use std::io::{Seek, SeekFrom};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use poster_core::send::{SendOptions, SendStep, Sender};
use poster_core::{Body, FormOptions};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::errors::{from_io, send_error_to_pyerr, to_pyerr};
use crate::escape::Escape;
use crate::{parts, raw};

/// File data is handed out in chunks of this size: measured on loopback, 1 MiB `sendall`s move
/// more than twice what 64 KiB ones do.
const DEFAULT_CHUNK_SIZE: usize = 1 << 20;
// `Stream`'s text signature (read by stubtest) spells the default out.
const _: () = assert!(DEFAULT_CHUNK_SIZE == 1_048_576);
/// Below this a chunk is produced without releasing the GIL: the switch costs more than the copy.
const DETACH_MIN: usize = 64 * 1024;

/// A multipart/form-data body being streamed.
#[pyclass(subclass, module = "poster_rs._poster_rs", name = "Stream")]
pub(crate) struct StreamPy {
    /// Behind a `Mutex` only to make the class `Sync` (a reader need not be); access goes through
    /// `get_mut`, which `PyO3`'s borrow of `&mut self` already makes exclusive, so it never locks.
    /// Boxed: the body holds SIMD searchers aligned to 32 bytes, while Python allocates objects
    /// on 16-byte boundaries; inline, their aligned loads would fault.
    body: Mutex<Option<Box<Body>>>,
    boundary: String,
    content_length: Option<u64>,
    chunk_size: usize,
    progress: Option<Py<PyAny>>,
    part_starts: Vec<u64>,
    /// Set when reading ran to the end; a new `iter()` then starts over. A seek clears it, so
    /// a stream moved to its end on purpose stays there.
    exhausted: bool,
    /// Reused for chunks of unknown length, whose size is only known after the read.
    scratch: Vec<u8>,
}

/// The native sender's buffer: see `poster_core::send::DEFAULT_BUFFER_SIZE`.
const SEND_BUFFER: usize = poster_core::send::DEFAULT_BUFFER_SIZE;
// `send_to`'s text signature (read by stubtest) spells the default out.
const _: () = assert!(SEND_BUFFER == 2_097_152);

/// The descriptor and timeout of a `socket.socket` (or a bare descriptor, without timeout).
fn socket_parts(sock: &Bound<'_, PyAny>) -> PyResult<(i32, Option<Duration>)> {
    if let Ok(fd) = sock.extract::<i32>() {
        return Ok((fd, None));
    }
    let fd: i32 = sock.call_method0("fileno")?.extract()?;
    let timeout: Option<f64> = sock.call_method0("gettimeout")?.extract()?;
    let timeout = timeout
        .map(|t| {
            Duration::try_from_secs_f64(t)
                .map_err(|_| PyValueError::new_err(format!("invalid socket timeout {t}")))
        })
        .transpose()?;
    Ok((fd, timeout))
}

fn busy() -> PyErr {
    PyRuntimeError::new_err(
        "MultipartStream is already in use by another thread; a stream is one sequence of bytes \
         and cannot be consumed from two threads at once",
    )
}

// Python aligns objects to 16 bytes; anything stricter inside the class must be boxed.
const _: () = assert!(std::mem::align_of::<StreamPy>() <= 16);

fn body_of(body: &mut Mutex<Option<Box<Body>>>) -> PyResult<&mut Body> {
    body.get_mut()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_deref_mut()
        .ok_or_else(closed)
}

fn closed() -> PyErr {
    PyValueError::new_err("I/O operation on closed MultipartStream")
}

impl StreamPy {
    fn body(&mut self) -> PyResult<&mut Body> {
        body_of(&mut self.body)
    }

    /// The next chunk (at most `max` bytes, or the chunk size), after which the progress
    /// function, if any, hears which bytes were produced.
    fn next_reporting<'py>(
        slf: &Bound<'py, Self>,
        max: Option<usize>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let py = slf.py();
        let (chunk, start, progress) = {
            let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
            let start = this.body()?.position();
            let size = max.unwrap_or(this.chunk_size);
            let chunk = this.produce(py, size)?;
            if chunk.is_none() {
                this.exhausted = true;
            }
            (
                chunk,
                start,
                this.progress.as_ref().map(|p| p.clone_ref(py)),
            )
        };
        // Called without the borrow held: the callback may use the stream (tell, total).
        if let (Some(progress), Some(chunk)) = (progress, &chunk) {
            progress.call1(py, (start, start + chunk.as_bytes().len() as u64))?;
        }
        Ok(chunk)
    }

    /// Produces up to `max` bytes as a `bytes` object; `None` at the end.
    fn produce<'py>(
        &mut self,
        py: Python<'py>,
        max: usize,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let known = self.content_length.is_some();
        let body = body_of(&mut self.body)?;
        let Some(n) = body.next_chunk_len(max) else {
            return Ok(None);
        };
        if n == 0 {
            // Only empty files are left: let the encoder check they are still empty.
            body.fill(&mut []).map_err(to_pyerr)?;
            return Ok(None);
        }
        if known {
            let fill = |buf: &mut [MaybeUninit<u8>]| {
                if n >= DETACH_MIN {
                    py.detach(|| body.fill_uninit(buf))
                } else {
                    body.fill_uninit(buf)
                }
                .map_err(to_pyerr)
            };
            return raw::bytes_filled_by(py, n, fill).map(Some);
        }
        let scratch = &mut self.scratch;
        scratch.resize(n, 0);
        let written = py.detach(|| body.fill(scratch)).map_err(to_pyerr)?;
        if written == 0 {
            return Ok(None);
        }
        Ok(Some(PyBytes::new(py, &scratch[..written])))
    }
}

#[pymethods]
impl StreamPy {
    /// Builds the body from a list of form items; see `poster_rs.multipart_encode`. With
    /// `guess_type(suffix)`, `(name, os.PathLike)` pairs are read here too.
    #[new]
    #[pyo3(
        signature = (items, normalize, *, boundary=None, escape=Escape::default(), chunk_size=DEFAULT_CHUNK_SIZE, check_boundary=None, guess_type=None),
        text_signature = "(items, normalize, *, boundary=None, escape='quoted', chunk_size=1048576, check_boundary=None, guess_type=None)"
    )]
    fn new(
        items: &Bound<'_, PyList>,
        normalize: &Bound<'_, PyAny>,
        boundary: Option<String>,
        escape: Escape,
        chunk_size: usize,
        check_boundary: Option<bool>,
        guess_type: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if chunk_size == 0 {
            return Err(PyValueError::new_err("chunk_size must be positive"));
        }
        let form = parts::collect(items, normalize, guess_type)?;
        let options_boundary_given = boundary.is_some();
        let options = FormOptions {
            boundary,
            escape: escape.0,
            // A generated 128-bit random boundary turns up in file data with a probability
            // below 2^-88 per terabyte: scanning every byte for it would cost ~15 % of
            // throughput for nothing. A caller's boundary is checked everywhere.
            skip_stream_boundary_check: !check_boundary.unwrap_or(options_boundary_given),
        };
        let py = items.py();
        let body = py.detach(|| form.build(&options)).map_err(to_pyerr)?;
        Ok(StreamPy {
            boundary: body.boundary().to_owned(),
            content_length: body.content_length(),
            part_starts: body.part_starts().to_vec(),
            body: Mutex::new(Some(Box::new(body))),
            chunk_size,
            progress: None,
            exhausted: false,
            scratch: Vec::new(),
        })
    }

    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
        let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
        // A stream iterated to its end starts over, so a client that iterates it again for a
        // retry or a redirect sends the whole body rather than nothing.
        let exhausted = this.exhausted;
        let body = this.body()?;
        if exhausted {
            body.seek(0).map_err(to_pyerr)?;
            this.exhausted = false;
        }
        Ok(slf.clone().unbind())
    }

    fn __next__<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Self::next_reporting(slf, None)
    }

    /// Reads up to `size` bytes (all that is left when `size` is negative or omitted); `b""` at
    /// the end. Used by the file-like view; the stream itself has no `read`, so that clients
    /// iterate its large chunks.
    #[pyo3(signature = (size=-1), text_signature = "($self, size=-1)")]
    fn _read<'py>(slf: &Bound<'py, Self>, size: i64) -> PyResult<Bound<'py, PyBytes>> {
        let py = slf.py();
        if size >= 0 {
            let chunk = Self::next_reporting(slf, Some(size as usize))?;
            return Ok(chunk.unwrap_or_else(|| PyBytes::new(py, b"")));
        }
        let mut all = Vec::new();
        while let Some(chunk) = Self::next_reporting(slf, None)? {
            all.extend_from_slice(chunk.as_bytes());
        }
        Ok(PyBytes::new(py, &all))
    }

    /// The Content-Length, or `None` for a body of unknown length (sent chunked).
    #[getter]
    fn total(&self) -> Option<u64> {
        self.content_length
    }

    /// Bytes produced so far (the position of the next byte).
    #[getter]
    fn current(slf: &Bound<'_, Self>) -> PyResult<u64> {
        Self::tell(slf)
    }

    /// The position of the next byte.
    fn tell(slf: &Bound<'_, Self>) -> PyResult<u64> {
        let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
        Ok(this.body()?.position())
    }

    /// Moves to `offset` (relative to the start, the current position or the end for `whence`
    /// 0, 1, 2) and returns the new position.
    #[pyo3(signature = (offset, whence=0))]
    fn seek(slf: &Bound<'_, Self>, offset: i64, whence: i32) -> PyResult<u64> {
        let position = match whence {
            0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| {
                to_pyerr(poster_core::Error::SeekOutOfRange {
                    offset: i128::from(offset),
                    len: slf.borrow().content_length.unwrap_or(0),
                })
            })?),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid whence ({other}, should be 0, 1 or 2)"
                )));
            }
        };
        let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
        let target = Seek::seek(this.body()?, position).map_err(from_io)?;
        this.exhausted = false;
        Ok(target)
    }

    /// Goes back to the first byte.
    fn reset(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::seek(slf, 0, 0).map(|_| ())
    }

    /// Releases every file; further use raises `ValueError`.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
        *this
            .body
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        this.scratch = Vec::new();
        Ok(())
    }

    #[getter]
    fn closed(&mut self) -> bool {
        body_of(&mut self.body).is_err()
    }

    #[getter]
    fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The `Content-Type` header value.
    #[getter]
    fn content_type(&self) -> String {
        poster_core::boundary::content_type(&self.boundary)
    }

    #[getter]
    fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Sends the body, from its current position to its end, into the connected socket `sock`
    /// (a `socket.socket` or a descriptor) from native code, with the GIL released: a reused
    /// buffer filled by positioned reads, `send(2)` calls, or `sendfile(2)` for file data with
    /// `use_sendfile=True` (Linux). A body of files and bytes at least four buffers long is
    /// read on a second thread while the previous buffer goes out (on a machine with more than
    /// one core, and without a progress callback). The socket's timeout bounds each wait; `deadline`, a
    /// `time.monotonic()` value, bounds the whole send (`TimeoutError` when either passes).
    /// With `chunked` (the default for a body of unknown length) the body is framed with
    /// chunked transfer coding. `buffer_size` is the size of each `send(2)` (the default
    /// measured best; see the README's benchmark table). `head` (the request's head, as
    /// bytes) goes out first, in the same system call as the body's first bytes, so a small
    /// request leaves as one TCP segment.
    ///
    /// Returns `(done, said)`: whether the whole body went out, and what the server has already
    /// sent (after interim `1xx` responses), which is the start of its response and must be
    /// parsed before anything else is read from the socket. If the server begins its final
    /// answer before the body is complete (a 413, a 401, a redirect), sending stops at once and
    /// `done` is false.
    #[pyo3(
        signature = (sock, *, deadline=None, use_sendfile=false, chunked=None, buffer_size=SEND_BUFFER, head=None),
        text_signature = "($self, sock, *, deadline=None, use_sendfile=False, chunked=None, buffer_size=2097152, head=None)"
    )]
    fn send_to<'py>(
        slf: &Bound<'py, Self>,
        sock: &Bound<'py, PyAny>,
        deadline: Option<f64>,
        use_sendfile: bool,
        chunked: Option<bool>,
        buffer_size: usize,
        head: Option<&[u8]>,
    ) -> PyResult<(bool, Bound<'py, PyBytes>)> {
        if buffer_size == 0 {
            return Err(PyValueError::new_err("buffer_size must be positive"));
        }
        let py = slf.py();
        let (fd, timeout) = socket_parts(sock)?;
        let socket = raw::dup_fd(fd)?;
        let deadline = match deadline {
            Some(at) => {
                let now: f64 = py.import("time")?.call_method0("monotonic")?.extract()?;
                let left =
                    Duration::try_from_secs_f64((at - now).max(0.0)).unwrap_or(Duration::MAX);
                Some(Instant::now() + left)
            }
            None => None,
        };
        let (options, mut sender, limit) = {
            let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
            let len = this.content_length;
            let options = SendOptions {
                idle_timeout: timeout,
                deadline,
                chunked: chunked.unwrap_or(len.is_none()),
                use_sendfile,
                read_ahead: true,
            };
            let position = this.body()?.position();
            let left = len.map_or(u64::MAX, |len| len - position);
            // A small body gets a small buffer: shipping jobs send many of them.
            let buffer = left.min(buffer_size as u64).max(1) as usize;
            let limit = if this.progress.is_some() {
                this.chunk_size as u64
            } else {
                u64::MAX
            };
            let mut sender = Sender::new(buffer);
            sender.queue_head(head.unwrap_or_default());
            (options, sender, limit)
        };
        loop {
            let (step, start, end, progress) = {
                let mut this = slf.try_borrow_mut().map_err(|_| busy())?;
                let body = this.body()?;
                let start = body.position();
                let step = py.detach(|| sender.send(body, socket.as_fd(), &options, limit));
                let end = body.position();
                if matches!(step, Ok(SendStep::Finished(_))) {
                    this.exhausted = true;
                }
                (
                    step,
                    start,
                    end,
                    this.progress.as_ref().map(|p| p.clone_ref(py)),
                )
            };
            if let Some(progress) = progress
                && end > start
            {
                progress.call1(py, (start, end))?;
            }
            match step.map_err(send_error_to_pyerr)? {
                SendStep::Finished(said) => return Ok((true, PyBytes::new(py, &said))),
                SendStep::Answered(answer) => return Ok((false, PyBytes::new(py, &answer))),
                SendStep::Interrupted => py.check_signals()?,
                SendStep::Progress => {}
            }
        }
    }

    /// Sets the function called with `(start, end)` after each chunk is produced.
    fn _set_progress(&mut self, progress: Option<Py<PyAny>>) {
        self.progress = progress;
    }

    /// Offsets where each part starts, then where the closing delimiter starts (empty when the
    /// length is unknown).
    #[getter]
    fn part_starts(&self) -> Vec<u64> {
        self.part_starts.clone()
    }
}
