//! Sending a body into a connected socket, without a host language in the loop: a reused
//! buffer filled by positioned reads (on a second thread while the previous one goes out, for a
//! large body; see [`read_ahead`]), `send(2)` (or `sendfile(2)` for file data, where it is
//! faster), and a watch for the server's early answer, so an upload the server refuses stops
//! at once instead of pushing the rest of a large body into a socket nobody reads.
//!
//! [`Sender::send`] works in steps so that a caller can report progress, or check for signals
//! (a step ends with [`SendStep::Interrupted`] when a signal interrupts a wait), between them.

use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

use crate::body::{Body, FileSpan};
use crate::early_answer::strip_interim;
use crate::error::Error;

mod read_ahead;

/// The sender's buffer: one `send(2)` per fill. Measured on loopback (2-core Intel Xeon, 1 GiB
/// file, 8 runs, serial sends): 256 KiB 1.76 GB/s, 512 KiB 2.00, 1 MiB 1.97, 2 MiB 2.13
/// (medians; CPU 0.61, 0.53, 0.54, 0.50 s/GiB). Reading ahead (15 runs, ratios to `sendall`
/// of 1 MiB in the same process): 1 MiB 0.74-0.78x, 1.5 MiB 0.84x, 2 MiB 0.85-0.91x, 3 MiB
/// 0.79x, 4 MiB 0.74x; fewer hand-overs between the threads, while two buffers still fit the
/// cores' 2 MiB L2 caches.
pub const DEFAULT_BUFFER_SIZE: usize = 2 * 1024 * 1024;

/// Room before the data for a chunk-size line (`{hex}\r\n`).
const CHUNK_PREFIX: usize = 18;
/// The last chunk and the end of an empty trailer.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `MSG_NOSIGNAL` where it exists: a closed peer is an `EPIPE` error, never a `SIGPIPE`.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const SEND_FLAGS: SendFlags = SendFlags::DONTWAIT.union(SendFlags::NOSIGNAL);
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const SEND_FLAGS: SendFlags = SendFlags::DONTWAIT;
/// The head ahead of `sendfile(2)` data (spans exist on Linux only): corked with `MSG_MORE`
/// so that it leaves in the same segment as the file's first bytes.
#[cfg(target_os = "linux")]
const HEAD_BEFORE_SPAN_FLAGS: SendFlags = SEND_FLAGS.union(SendFlags::MORE);
#[cfg(not(target_os = "linux"))]
const HEAD_BEFORE_SPAN_FLAGS: SendFlags = SEND_FLAGS;

/// How a body is sent.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// The longest wait for the socket to take more bytes; `None` waits for ever.
    pub idle_timeout: Option<Duration>,
    /// When the whole send must be over, however steadily bytes move.
    pub deadline: Option<Instant>,
    /// Frame the body with chunked transfer coding (for a body of unknown length).
    pub chunked: bool,
    /// Send file data that needs no scanning with `sendfile(2)` (Linux only; elsewhere ignored).
    pub use_sendfile: bool,
    /// Read the next buffer on a second thread while the current one is sent, where that pays:
    /// see [`read_ahead`] for when it does. Ignored with `use_sendfile`.
    pub read_ahead: bool,
}

/// Where a step of [`Sender::send`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum SendStep {
    /// At least the requested number of body bytes went out, and more remain.
    Progress,
    /// The whole body (and, when chunked, its last chunk) went out. Whatever the server sent
    /// meanwhile (an interim response cut short, say) is the start of its response.
    Finished(Vec<u8>),
    /// The server began its final answer before the body was complete: these are its first
    /// bytes (after any interim `1xx` responses), or empty when it closed the connection.
    Answered(Vec<u8>),
    /// A signal interrupted a wait; nothing is lost, call [`Sender::send`] again.
    Interrupted,
}

/// Why sending failed.
#[derive(Debug)]
pub enum SendError {
    /// Producing the body failed (a file changed, could not be read, ...).
    Body(Error),
    /// The socket failed (the peer reset the connection, ...).
    Socket(io::Error),
    /// Nothing could be sent within the idle timeout, or the deadline passed.
    TimedOut,
}

impl From<Error> for SendError {
    fn from(e: Error) -> SendError {
        SendError::Body(e)
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Body(e) => e.fmt(f),
            SendError::Socket(e) => write!(f, "sending the request body failed: {e}"),
            SendError::TimedOut => f.write_str("timed out sending the request body"),
        }
    }
}

impl std::error::Error for SendError {}

/// Sends bodies into sockets; keeps its buffer between steps and between bodies.
pub struct Sender {
    buf: Vec<u8>,
    /// The second buffer when reading ahead (empty until then).
    spare: Vec<u8>,
    /// Bytes of `buf` filled but not yet sent.
    pending: std::ops::Range<usize>,
    /// File data being sent with `sendfile(2)`.
    span: Option<FileSpan>,
    /// What the server has said so far while the body was going out.
    early: Vec<u8>,
    last_chunk_queued: bool,
    /// The request's head, sent with the body's first bytes; `head_sent` of it went out.
    head: Vec<u8>,
    head_sent: usize,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("buffer", &self.buf.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender whose buffer holds `buffer_size` bytes of body data per `send(2)`.
    pub fn new(buffer_size: usize) -> Sender {
        Sender {
            buf: vec![0; buffer_size.max(1) + CHUNK_PREFIX + 2],
            spare: Vec::new(),
            pending: 0..0,
            span: None,
            early: Vec::new(),
            last_chunk_queued: false,
            head: Vec::new(),
            head_sent: 0,
        }
    }

    /// Queues bytes that go out before the body, in the same `sendmsg(2)` as the body's first
    /// bytes: the request's head, so that a small request leaves as one segment and wakes the
    /// server once (or corked with `MSG_MORE` ahead of `sendfile(2)` data).
    pub fn queue_head(&mut self, head: &[u8]) {
        self.head.clear();
        self.head.extend_from_slice(head);
        self.head_sent = 0;
    }

    /// Forgets a body that was only partly sent, to start another.
    pub fn reset(&mut self) {
        self.pending = 0..0;
        self.span = None;
        self.early.clear();
        self.last_chunk_queued = false;
        self.head.clear();
        self.head_sent = 0;
    }

    /// Sends the body from its current position into the connected socket `sock` until at
    /// least `limit` more body bytes went out, the body is complete, the server answers, or a
    /// signal interrupts a wait. When the step ends with `Progress`, `Finished` or
    /// `Interrupted`, [`Body::position`] counts exactly the body bytes that went out.
    pub fn send(
        &mut self,
        body: &mut Body,
        sock: BorrowedFd<'_>,
        options: &SendOptions,
        limit: u64,
    ) -> Result<SendStep, SendError> {
        if read_ahead::pays(self, body, options, limit) {
            return self.send_reading_ahead(body, sock, options, limit);
        }
        self.send_from(body, sock, options, limit)
    }

    /// Body bytes the buffer holds, leaving room for chunk framing.
    fn capacity(&self) -> usize {
        self.buf.len() - CHUNK_PREFIX - 2
    }

    /// The send loop of [`Sender::send`], taking the body's bytes from `feed`.
    fn send_from(
        &mut self,
        feed: &mut impl Feed,
        sock: BorrowedFd<'_>,
        options: &SendOptions,
        limit: u64,
    ) -> Result<SendStep, SendError> {
        let step_start = feed.position();
        loop {
            let head_sent = self.head_sent == self.head.len();
            if self.pending.is_empty() && self.span.is_none() {
                if feed.is_finished() {
                    if options.chunked && !self.last_chunk_queued {
                        self.last_chunk_queued = true;
                        self.buf[..LAST_CHUNK.len()].copy_from_slice(LAST_CHUNK);
                        self.pending = 0..LAST_CHUNK.len();
                        continue;
                    }
                    if head_sent {
                        return Ok(SendStep::Finished(std::mem::take(&mut self.early)));
                    }
                } else if head_sent && feed.position() - step_start >= limit {
                    return Ok(SendStep::Progress);
                } else {
                    feed.next(self, options)?;
                    continue;
                }
            }
            match wait(sock, options)? {
                Readiness::Interrupted => return Ok(SendStep::Interrupted),
                Readiness::Ready { readable, writable } => {
                    if readable && let Some(answer) = self.server_answered(sock)? {
                        return Ok(SendStep::Answered(answer));
                    }
                    if writable {
                        self.send_some(sock)?;
                    }
                }
            }
        }
    }

    /// Queues the next bytes of the body: a file span for `sendfile(2)`, or a filled buffer.
    fn produce(&mut self, body: &mut Body, options: &SendOptions) -> Result<(), SendError> {
        let capacity = self.capacity();
        let mut max = capacity;
        if options.use_sendfile && cfg!(target_os = "linux") && !options.chunked {
            if let Some(span) = body.next_file_span(capacity as u64)? {
                self.span = Some(span);
                return Ok(());
            }
            max = body.bytes_before_file_span(capacity).max(1);
        }
        self.pending = fill_framed(body, &mut self.buf, max, options.chunked)?;
        Ok(())
    }

    fn send_some(&mut self, sock: BorrowedFd<'_>) -> Result<(), SendError> {
        if self.head_sent < self.head.len() {
            return self.send_head(sock);
        }
        if let Some(span) = &mut self.span {
            return match send_file(sock, span) {
                Ok(()) if span.len == 0 => {
                    self.span = None;
                    Ok(())
                }
                Ok(()) => Ok(()),
                Err(e) if is_retry(&e) => Ok(()),
                Err(e) => Err(e),
            };
        }
        match rustix::net::send(sock, &self.buf[self.pending.clone()], SEND_FLAGS) {
            Ok(n) => {
                self.pending.start += n;
                Ok(())
            }
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => Ok(()),
            Err(e) => Err(SendError::Socket(e.into())),
        }
    }

    /// Sends the rest of the head, and with it as much of the buffered body as the socket takes.
    fn send_head(&mut self, sock: BorrowedFd<'_>) -> Result<(), SendError> {
        let head = &self.head[self.head_sent..];
        let sent = if self.span.is_some() {
            rustix::net::send(sock, head, HEAD_BEFORE_SPAN_FLAGS)
        } else {
            let data = [
                IoSlice::new(head),
                IoSlice::new(&self.buf[self.pending.clone()]),
            ];
            rustix::net::sendmsg(sock, &data, &mut SendAncillaryBuffer::default(), SEND_FLAGS)
        };
        match sent {
            Ok(n) => {
                let of_head = n.min(head.len());
                self.head_sent += of_head;
                self.pending.start += n - of_head;
                Ok(())
            }
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => Ok(()),
            Err(e) => Err(SendError::Socket(e.into())),
        }
    }

    /// Whether the server has begun its final answer (or closed the connection): takes what
    /// it sent off the socket and keeps it, minus interim responses.
    fn server_answered(&mut self, sock: BorrowedFd<'_>) -> Result<Option<Vec<u8>>, SendError> {
        let mut incoming = [0u8; 16 * 1024];
        let n = match rustix::net::recv(sock, &mut incoming[..], RecvFlags::DONTWAIT) {
            Ok((n, _)) => n,
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => {
                return Ok(None);
            }
            Err(e) => return Err(SendError::Socket(e.into())),
        };
        if n == 0 {
            return Ok(Some(std::mem::take(&mut self.early)));
        }
        self.early.extend_from_slice(&incoming[..n]);
        let (rest, is_final) = strip_interim(&self.early);
        let rest = rest.to_vec();
        self.early = rest;
        Ok(is_final.then(|| std::mem::take(&mut self.early)))
    }
}

/// Where the send loop takes the body's bytes from: the body itself, read between sends, or
/// a thread reading it ahead ([`read_ahead::ReadAhead`]).
trait Feed {
    /// The body offset just past the bytes handed to the sender so far.
    fn position(&self) -> u64;
    /// Whether the body's last bytes have been handed to the sender.
    fn is_finished(&self) -> bool;
    /// Hands the sender the body's next bytes: `sender.pending` of its buffer, or a file span.
    fn next(&mut self, sender: &mut Sender, options: &SendOptions) -> Result<(), SendError>;
}

impl Feed for Body {
    fn position(&self) -> u64 {
        Body::position(self)
    }

    fn is_finished(&self) -> bool {
        Body::is_finished(self)
    }

    fn next(&mut self, sender: &mut Sender, options: &SendOptions) -> Result<(), SendError> {
        sender.produce(self, options)
    }
}

/// Fills `buf` with at most `max` of the body's next bytes, framed as a chunk when `chunked`
/// (`buf` has room for the framing); returns the part of `buf` to send.
fn fill_framed(
    body: &mut Body,
    buf: &mut [u8],
    max: usize,
    chunked: bool,
) -> Result<std::ops::Range<usize>, Error> {
    if !chunked {
        let n = body.fill(&mut buf[..max])?;
        return Ok(0..n);
    }
    let n = body.fill(&mut buf[CHUNK_PREFIX..CHUNK_PREFIX + max])?;
    if n == 0 {
        return Ok(0..0);
    }
    let line = format!("{n:X}\r\n");
    let start = CHUNK_PREFIX - line.len();
    buf[start..CHUNK_PREFIX].copy_from_slice(line.as_bytes());
    buf[CHUNK_PREFIX + n..CHUNK_PREFIX + n + 2].copy_from_slice(b"\r\n");
    Ok(start..CHUNK_PREFIX + n + 2)
}

fn is_retry(e: &SendError) -> bool {
    matches!(e, SendError::Socket(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted))
}

#[cfg(target_os = "linux")]
fn send_file(sock: BorrowedFd<'_>, span: &mut FileSpan) -> Result<(), SendError> {
    let count = usize::try_from(span.len).unwrap_or(usize::MAX);
    let sent = rustix::fs::sendfile(sock, &*span.file, Some(&mut span.offset), count)
        .map_err(|e| SendError::Socket(e.into()))?;
    if sent == 0 {
        return Err(SendError::Body(Error::SizeChanged {
            part: span.part.clone(),
            path: None,
            expected: span.offset + span.len,
            actual: span.offset,
        }));
    }
    span.len -= sent as u64;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send_file(_sock: BorrowedFd<'_>, _span: &mut FileSpan) -> Result<(), SendError> {
    unreachable!("sendfile spans are only handed out on Linux")
}

enum Readiness {
    Ready { readable: bool, writable: bool },
    Interrupted,
}

/// Waits until the socket can take more bytes or has something to read (an early answer, a
/// closed connection), within the idle timeout and the deadline.
fn wait(sock: BorrowedFd<'_>, options: &SendOptions) -> Result<Readiness, SendError> {
    let mut timeout = options.idle_timeout;
    if let Some(deadline) = options.deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SendError::TimedOut);
        }
        timeout = Some(timeout.map_or(left, |t| t.min(left)));
    }
    let timespec = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    let mut fds = [PollFd::new(&sock, PollFlags::IN | PollFlags::OUT)];
    match rustix::event::poll(&mut fds, timespec.as_ref()) {
        Ok(0) => Err(SendError::TimedOut),
        Ok(_) => {
            let events = fds[0].revents();
            Ok(Readiness::Ready {
                readable: events.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR),
                writable: events.contains(PollFlags::OUT),
            })
        }
        Err(rustix::io::Errno::INTR) => Ok(Readiness::Interrupted),
        Err(e) => Err(SendError::Socket(e.into())),
    }
}

// sendfile spans exist on Linux only, and so does the one test here.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{SendOptions, Sender};
    use crate::{Form, FormOptions, Part};

    #[test]
    fn file_data_is_queued_for_sendfile_and_headers_are_copied() {
        let dir = std::env::temp_dir().join(format!("poster-send-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        std::fs::write(&path, vec![1u8; 10_000]).unwrap();
        // Data that must be scanned for the delimiter is read, never sent with sendfile.
        let unscanned = FormOptions {
            skip_stream_boundary_check: true,
            ..FormOptions::default()
        };
        let mut body = Form::new()
            .part(Part::text("t", "v"))
            .part(Part::file("f", &path))
            .build(&unscanned)
            .unwrap();
        let options = SendOptions {
            use_sendfile: true,
            ..SendOptions::default()
        };
        let mut sender = Sender::new(4096);
        sender.produce(&mut body, &options).unwrap();
        assert!(
            sender.span.is_none(),
            "the headers before the file are copied"
        );
        assert!(sender.buf[sender.pending.clone()].ends_with(b"\r\n\r\n"));
        sender.pending = 0..0;
        sender.produce(&mut body, &options).unwrap();
        let span = sender
            .span
            .as_ref()
            .expect("the file data is a sendfile span");
        assert_eq!(span.len, 4096, "at most a buffer's worth per span");
        let plain = SendOptions::default();
        let mut sender = Sender::new(4096);
        let mut body = Form::new()
            .part(Part::file("f", &path))
            .build(&unscanned)
            .unwrap();
        sender.produce(&mut body, &plain).unwrap();
        assert!(
            sender.span.is_none(),
            "without use_sendfile file data is copied"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
