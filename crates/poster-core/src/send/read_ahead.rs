//! Reading the next buffer on a second thread while the current one goes out.
//!
//! Sent serially, every byte of a file is copied twice on one core, out of the page cache
//! (`pread`) and into the socket (`send`), one after the other. Measured on loopback (2-core
//! Intel Xeon, 1 GiB file): `pread` runs at ~8 GB/s and `send` at ~3 GB/s, which bounds a
//! serial sender at ~0.7x of `send` alone (it measured 0.58-0.66x). With the reads on a second
//! thread the two copies overlap: 0.58-0.91x across benchmark runs, at the same or lower CPU
//! time per byte.
//!
//! The thread lives for one step of [`Sender::send`]: it takes `&mut Body` in a scope and
//! returns it at the step's end, when the body is moved back to just past the bytes handed to
//! the sender, so [`Body::position`] means what it does when sending serially. That move is
//! free for bytes and files and impossible for some readers, so a body with a reader part ahead
//! is sent serially; so are small bodies (a thread per step would cost more than it saves), and
//! everything on a machine with one core.

use std::ops::Range;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rustix::fd::BorrowedFd;

use super::{Feed, SendError, SendOptions, SendStep, Sender, fill_framed};
use crate::body::Body;
use crate::error::Error;

/// Reading ahead pays once a step sends at least this many buffers.
const MIN_BUFFERS_PER_STEP: u64 = 4;

/// Whether `sender` should read `body` ahead in a step of at most `limit` bytes.
pub(super) fn pays(sender: &Sender, body: &Body, options: &SendOptions, limit: u64) -> bool {
    let worth = MIN_BUFFERS_PER_STEP * sender.capacity() as u64;
    let left = body
        .content_length()
        .map_or(0, |len| len.saturating_sub(body.position()));
    options.read_ahead
        && !options.use_sendfile
        && left >= worth
        && limit >= worth
        && body.only_bytes_and_files_ahead()
        && has_spare_core()
}

fn has_spare_core() -> bool {
    static SPARE: OnceLock<bool> = OnceLock::new();
    *SPARE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// A buffer the reading thread filled.
struct Filled {
    buf: Vec<u8>,
    /// The part of `buf` to send.
    range: Range<usize>,
    /// The body's position after the fill, and whether the body is complete.
    position: u64,
    finished: bool,
}

impl Sender {
    /// One step of [`Sender::send`] with a second thread filling buffers ahead of the sends.
    pub(super) fn send_reading_ahead(
        &mut self,
        body: &mut Body,
        sock: BorrowedFd<'_>,
        options: &SendOptions,
        limit: u64,
    ) -> Result<SendStep, SendError> {
        let mut spare = std::mem::take(&mut self.spare);
        if spare.len() != self.buf.len() {
            spare = vec![0; self.buf.len()];
        }
        // Two buffers in all: one going out, one being filled.
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(2);
        let (filled_tx, filled_rx) = sync_channel::<Result<Filled, Error>>(2);
        empty_tx.send(spare).expect("the receiver is here");
        let (max, chunked) = (self.capacity(), options.chunked);
        let mut feed = ReadAhead {
            empty: Some(empty_tx),
            filled: filled_rx,
            position: body.position(),
            finished: false,
            kept: None,
        };
        let reading = &mut *body;
        let outcome = std::thread::scope(|scope| {
            let reader = std::thread::Builder::new()
                .name("poster-read-ahead".to_owned())
                .spawn_scoped(scope, move || {
                    fill_ahead(reading, max, chunked, &empty_rx, &filled_tx)
                })
                .ok()?;
            let step = self.send_from(&mut feed, sock, options, limit);
            // Hanging up stops the reader after the fill it is in, if any.
            feed.empty = None;
            let returned = match reader.join() {
                Ok(returned) => returned,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            Some((step, returned))
        });
        let Some((step, returned)) = outcome else {
            // No thread to be had (a process or memory limit): this step goes serially.
            return self.send_from(body, sock, options, limit);
        };
        // A buffer filled after the sender stopped taking them is the spare as well as any.
        let unsent = feed
            .filled
            .try_iter()
            .find_map(|fill| fill.ok().map(|f| f.buf));
        self.spare = feed.kept.take().or(returned).or(unsent).unwrap_or_default();
        // The reader may have gone past the bytes handed to the sender: back to them.
        if body.position() != feed.position {
            let moved = body.seek(feed.position);
            if step.is_ok() {
                moved?;
            }
        }
        step
    }
}

/// The sending side of reading ahead: buffers come filled from the reading thread and go back
/// to it once sent.
struct ReadAhead {
    /// Where sent buffers go back to be filled; `None` once the step is over.
    empty: Option<SyncSender<Vec<u8>>>,
    filled: Receiver<Result<Filled, Error>>,
    position: u64,
    finished: bool,
    /// A sent buffer the reader no longer needs (it has read the whole body).
    kept: Option<Vec<u8>>,
}

impl Feed for ReadAhead {
    fn position(&self) -> u64 {
        self.position
    }

    fn is_finished(&self) -> bool {
        self.finished
    }

    fn next(&mut self, sender: &mut Sender, _options: &SendOptions) -> Result<(), SendError> {
        let filled = self
            .filled
            .recv()
            .expect("the reader sends until it fails or the body is complete")?;
        let sent = std::mem::replace(&mut sender.buf, filled.buf);
        sender.pending = filled.range;
        self.position = filled.position;
        self.finished = filled.finished;
        if self.finished {
            self.kept = Some(sent);
        } else if let Some(empty) = &self.empty
            && let Err(back) = empty.send(sent)
        {
            self.kept = Some(back.0);
        }
        Ok(())
    }
}

/// The reading thread: fills each buffer it is given until the body is complete, a fill fails
/// (the error goes to the sender, after the bytes before it) or the sender hangs up. Returns a
/// buffer it still holds.
fn fill_ahead(
    body: &mut Body,
    max: usize,
    chunked: bool,
    empty: &Receiver<Vec<u8>>,
    filled: &SyncSender<Result<Filled, Error>>,
) -> Option<Vec<u8>> {
    while let Ok(mut buf) = empty.recv() {
        match fill_framed(body, &mut buf, max, chunked) {
            Ok(range) => {
                let finished = body.is_finished();
                let fill = Filled {
                    buf,
                    range,
                    position: body.position(),
                    finished,
                };
                match filled.send(Ok(fill)) {
                    Ok(()) if !finished => {}
                    Ok(()) => return None,
                    Err(back) => return back.0.ok().map(|fill| fill.buf),
                }
            }
            Err(e) => {
                let _ = filled.send(Err(e));
                return Some(buf);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    use super::{MIN_BUFFERS_PER_STEP, has_spare_core, pays};
    use crate::send::{SendOptions, SendStep, Sender};
    use crate::{Body, Form, FormOptions, Part, ReadOnce, Source};

    const BUFFER: usize = 4096;

    fn bytes_body(len: usize) -> Body {
        Form::new()
            .part(Part::new(
                "b",
                Source::Bytes(std::sync::Arc::new(vec![1u8; len])),
            ))
            .build(&FormOptions::default())
            .unwrap()
    }

    fn read_ahead() -> SendOptions {
        SendOptions {
            read_ahead: true,
            ..SendOptions::default()
        }
    }

    #[test]
    fn only_long_steps_of_files_and_bytes_are_read_ahead() {
        let sender = Sender::new(BUFFER);
        let long = 2 * MIN_BUFFERS_PER_STEP as usize * BUFFER;
        let spare_core = has_spare_core();
        assert_eq!(
            pays(&sender, &bytes_body(long), &read_ahead(), u64::MAX),
            spare_core
        );
        assert!(!pays(
            &sender,
            &bytes_body(long),
            &SendOptions::default(),
            u64::MAX
        ));
        let sendfile = SendOptions {
            use_sendfile: true,
            ..read_ahead()
        };
        assert!(!pays(&sender, &bytes_body(long), &sendfile, u64::MAX));
        assert!(!pays(&sender, &bytes_body(BUFFER), &read_ahead(), u64::MAX));
        assert!(!pays(
            &sender,
            &bytes_body(long),
            &read_ahead(),
            BUFFER as u64
        ));
        let with_reader = Form::new()
            .part(Part::new(
                "b",
                Source::Bytes(std::sync::Arc::new(vec![1u8; long])),
            ))
            .part(Part::new(
                "r",
                Source::Reader {
                    reader: Box::new(ReadOnce(std::io::Cursor::new(vec![2u8; 10]))),
                    len: Some(10),
                },
            ))
            .build(&FormOptions::default())
            .unwrap();
        assert!(!pays(&sender, &with_reader, &read_ahead(), u64::MAX));
    }

    #[test]
    fn both_buffers_come_back_after_a_step() {
        if !has_spare_core() {
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let reading = std::thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            got.len()
        });
        let mut body = bytes_body(64 * BUFFER);
        let len = body.content_length().unwrap();
        let mut sender = Sender::new(BUFFER);
        let step = sender.send(&mut body, client.as_fd(), &read_ahead(), 16 * BUFFER as u64);
        assert_eq!(step.unwrap(), SendStep::Progress);
        assert_eq!(
            sender.spare.len(),
            sender.buf.len(),
            "the spare buffer is kept"
        );
        while !matches!(
            sender
                .send(&mut body, client.as_fd(), &read_ahead(), u64::MAX)
                .unwrap(),
            SendStep::Finished(_)
        ) {}
        assert_eq!(sender.spare.len(), sender.buf.len());
        drop(client);
        assert_eq!(reading.join().unwrap() as u64, len);
    }
}
