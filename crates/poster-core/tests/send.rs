//! The native send path against real sockets on 127.0.0.1: the bytes that arrive are exactly
//! the body's, plain and chunked, through `send(2)` (reading serially or on a second thread)
//! and `sendfile(2)`; an early answer stops the upload at once; a reset, a shrinking file, an
//! idle peer and a deadline each end it with the right error. Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{TempDir, fill_all, options, reader_part};
use poster_core::send::{SendError, SendOptions, SendStep, Sender};
use poster_core::{Body, EscapeMode, Form, Part, ReadOnce, Source};

const MIB: usize = 1 << 20;

/// The ways a body can go out: every behaviour below holds for each.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// Read into the buffer, then sent, in turn.
    Serial,
    /// Read on a second thread while the previous buffer is sent.
    ReadAhead,
    /// File data with `sendfile(2)` (Linux; elsewhere the serial way).
    Sendfile,
}

const WAYS: [Way; 3] = [Way::Serial, Way::ReadAhead, Way::Sendfile];

impl Way {
    fn options(self) -> SendOptions {
        SendOptions {
            use_sendfile: matches!(self, Way::Sendfile),
            read_ahead: matches!(self, Way::ReadAhead),
            ..SendOptions::default()
        }
    }
}

/// A fixed boundary whose delimiter is not searched for in file data, so that file data can go
/// out with `sendfile(2)` when asked (scanned data is always read into the buffer).
fn unscanned(boundary: &str) -> poster_core::FormOptions {
    poster_core::FormOptions {
        skip_stream_boundary_check: true,
        ..options(boundary, EscapeMode::Quoted)
    }
}

/// A sparse file of `len` bytes (zeros, no disk used) in `dir`.
fn sparse_file(dir: &TempDir, name: &str, len: u64) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    path
}

/// A body of one file part, its data not scanned (so it may go out with `sendfile(2)`).
fn file_body(name: &str, path: &std::path::Path, boundary: &str) -> Body {
    Form::new()
        .part(Part::file(name, path))
        .build(&unscanned(boundary))
        .unwrap()
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A connected pair: the client end and a server thread running `serve` on the other end.
fn connect<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (TcpStream, thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        serve(conn)
    });
    let client = TcpStream::connect(addr).expect("connect");
    (client, server)
}

fn read_to_end(mut conn: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    conn.read_to_end(&mut out).expect("read");
    out
}

fn send_all(
    body: &mut Body,
    sock: &TcpStream,
    options: &SendOptions,
) -> Result<SendStep, SendError> {
    let mut sender = Sender::new(64 * 1024);
    loop {
        match sender.send(body, sock.as_fd(), options, u64::MAX)? {
            SendStep::Progress | SendStep::Interrupted => {}
            other => return Ok(other),
        }
    }
}

fn mixed_body(dir: &TempDir, data: &[u8]) -> Body {
    let path = dir.write("data.bin", data);
    Form::new()
        .part(Part::text("title", "a title"))
        .part(Part::file("upload", &path))
        .part(Part::new(
            "blob",
            Source::Bytes(std::sync::Arc::new(vec![7u8; 100_000])),
        ))
        .part(reader_part("reader", &data[..300_000]))
        .build(&unscanned("send-test-boundary"))
        .expect("build")
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("size line");
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap(), 16)
            .expect("hex size");
        data = &data[line_end + 2..];
        if size == 0 {
            assert_eq!(data, b"\r\n", "last chunk then an empty trailer");
            return out;
        }
        out.extend_from_slice(&data[..size]);
        assert_eq!(&data[size..size + 2], b"\r\n");
        data = &data[size + 2..];
    }
}

/// Text, two files and shared bytes, no reader: a body that can be read ahead.
fn files_and_bytes_body(dir: &TempDir, data: &[u8]) -> Body {
    let first = dir.write("first.bin", data);
    let second = dir.write("second.bin", &data[..data.len() / 3]);
    Form::new()
        .part(Part::text("title", "a title"))
        .part(Part::file("first", &first))
        .part(Part::new(
            "blob",
            Source::Bytes(std::sync::Arc::new(vec![7u8; 100_000])),
        ))
        .part(Part::file("second", &second))
        .build(&unscanned("send-test-boundary"))
        .expect("build")
}

#[test]
fn the_bytes_that_arrive_are_the_body_whatever_the_way() {
    let dir = TempDir::new("send-exact");
    let data = pseudo_random(5 * MIB + 12_345, 1);
    let build: [&dyn Fn() -> Body; 2] = [&|| mixed_body(&dir, &data), &|| {
        files_and_bytes_body(&dir, &data)
    }];
    for build in build {
        let expected = fill_all(&mut build(), 4096).unwrap();
        for way in WAYS {
            let mut body = build();
            let (client, server) = connect(read_to_end);
            let step = send_all(&mut body, &client, &way.options()).unwrap();
            assert_eq!(step, SendStep::Finished(Vec::new()));
            assert_eq!(body.position(), expected.len() as u64);
            drop(client);
            let got = server.join().unwrap();
            assert!(got == expected, "{way:?}: bytes differ");
        }
    }
}

#[test]
fn a_queued_head_goes_out_first_whatever_the_way_the_body_goes() {
    let dir = TempDir::new("send-head");
    let data = pseudo_random(3 * MIB + 5, 7);
    let head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: n\r\n\r\n".repeat(50);
    let cases = [
        (Way::Serial, false),
        (Way::Sendfile, false),
        (Way::Serial, true),
        (Way::ReadAhead, false),
        (Way::ReadAhead, true),
    ];
    for (way, chunked) in cases {
        let expected = fill_all(&mut files_and_bytes_body(&dir, &data), 4096).unwrap();
        let mut body = files_and_bytes_body(&dir, &data);
        let (client, server) = connect(read_to_end);
        let options = SendOptions {
            chunked,
            ..way.options()
        };
        // A buffer smaller than the head: the head still goes out whole, before the body.
        let mut sender = Sender::new(1000);
        sender.queue_head(&head);
        while let SendStep::Progress = sender
            .send(&mut body, client.as_fd(), &options, u64::MAX)
            .unwrap()
        {}
        assert_eq!(
            body.position(),
            expected.len() as u64,
            "counts body bytes only"
        );
        drop(client);
        let got = server.join().unwrap();
        assert!(got.starts_with(&head), "the head comes first");
        let rest = &got[head.len()..];
        let rest = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        assert!(rest == expected, "{way:?} chunked={chunked}: body differs");
    }
}

#[test]
fn a_head_without_a_body_is_sent_too() {
    let mut body = Form::new().build(&unscanned("empty")).unwrap();
    let expected = fill_all(&mut Form::new().build(&unscanned("empty")).unwrap(), 64).unwrap();
    let (client, server) = connect(read_to_end);
    let mut sender = Sender::new(16);
    sender.queue_head(b"H\r\n\r\n");
    assert!(matches!(
        sender
            .send(&mut body, client.as_fd(), &SendOptions::default(), u64::MAX)
            .unwrap(),
        SendStep::Finished(_)
    ));
    drop(client);
    let got = server.join().unwrap();
    assert_eq!(&got[..5], b"H\r\n\r\n");
    assert!(got[5..] == expected[..]);
}

#[test]
fn a_body_of_unknown_length_goes_out_chunked() {
    let data = pseudo_random(3 * MIB + 7, 2);
    let build = || {
        Form::new()
            .part(Part::text("a", "b"))
            .part(Part::new(
                "pipe",
                Source::Reader {
                    reader: Box::new(ReadOnce(std::io::Cursor::new(data.clone()))),
                    len: None,
                },
            ))
            .build(&unscanned("chunked-boundary"))
            .unwrap()
    };
    let expected = fill_all(&mut build(), 4096).unwrap();
    let mut body = build();
    assert_eq!(body.content_length(), None);
    let (client, server) = connect(read_to_end);
    let options = SendOptions {
        chunked: true,
        ..SendOptions::default()
    };
    assert!(matches!(
        send_all(&mut body, &client, &options).unwrap(),
        SendStep::Finished(_)
    ));
    drop(client);
    assert!(dechunk(&server.join().unwrap()) == expected);
}

#[test]
fn progress_steps_end_at_the_limit_and_count_what_went_out() {
    let dir = TempDir::new("send-steps");
    let data = pseudo_random(2 * MIB, 3);
    // Steps of three buffers (serial), and of eight (read ahead: the thread stops at each step's
    // end and the body goes back to the bytes handed to the sender, so none is lost or doubled).
    for (way, limit) in [(Way::Serial, 300_000), (Way::ReadAhead, 800_000)] {
        let expected = fill_all(&mut files_and_bytes_body(&dir, &data), 4096).unwrap();
        let mut body = files_and_bytes_body(&dir, &data);
        let (client, server) = connect(read_to_end);
        let mut sender = Sender::new(100_000);
        let mut positions = Vec::new();
        loop {
            match sender
                .send(&mut body, client.as_fd(), &way.options(), limit)
                .unwrap()
            {
                SendStep::Progress => positions.push(body.position()),
                SendStep::Finished(_) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(positions.len() >= 3, "{way:?}: {positions:?}");
        assert!(positions.windows(2).all(|w| w[1] - w[0] >= limit));
        drop(client);
        assert!(server.join().unwrap() == expected, "{way:?}: bytes differ");
    }
}

#[test]
fn an_early_answer_stops_the_upload_and_is_handed_back() {
    let dir = TempDir::new("send-early");
    let path = sparse_file(&dir, "big.bin", 256 * MIB as u64);
    for way in WAYS {
        let mut body = Form::new()
            .part(Part::file("big", &path))
            .build(&unscanned("early-boundary"))
            .unwrap();
        let (client, server) = connect(|mut conn| {
            let mut first = vec![0u8; 64 * 1024];
            conn.read_exact(&mut first).unwrap();
            // An interim response first: it must not count as the answer.
            conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
            thread::sleep(Duration::from_millis(50));
            conn.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            // Stop reading, keep the connection open until the client is done.
            thread::sleep(Duration::from_secs(2));
        });
        client.set_write_timeout(None).unwrap();
        let options = SendOptions {
            idle_timeout: Some(Duration::from_secs(10)),
            ..way.options()
        };
        let started = Instant::now();
        let step = send_all(&mut body, &client, &options).unwrap();
        assert_eq!(
            step,
            SendStep::Answered(
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n".to_vec()
            )
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stopped at once"
        );
        assert!(
            body.position() < 200 * MIB as u64,
            "the rest was not pushed"
        );
        server.join().unwrap();
    }
}

#[test]
fn a_peer_that_closes_counts_as_an_answer_and_a_reset_is_an_error() {
    let dir = TempDir::new("send-reset");
    let path = sparse_file(&dir, "big.bin", 256 * MIB as u64);
    let build = || file_body("big", &path, "reset-boundary");
    for way in WAYS {
        a_close_and_a_reset_with(way, &build);
    }
}

fn a_close_and_a_reset_with(way: Way, build: &dyn Fn() -> Body) {
    // A plain close (FIN) after reading some: the client stops; nothing was said.
    let (client, server) = connect(|mut conn| {
        let mut first = vec![0u8; MIB];
        conn.read_exact(&mut first).unwrap();
    });
    let step = send_all(&mut build(), &client, &way.options());
    server.join().unwrap();
    match step {
        Ok(SendStep::Answered(said)) => assert!(said.is_empty()),
        Err(SendError::Socket(e)) => assert!(matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )),
        other => panic!("{way:?}: unexpected {other:?}"),
    }
    // A reset mid-body: a socket error, never a hang.
    let (client, server) = connect(|mut conn| {
        let mut first = vec![0u8; MIB];
        conn.read_exact(&mut first).unwrap();
        let sock = socket2_linger_zero(conn);
        drop(sock);
    });
    let step = send_all(&mut build(), &client, &way.options());
    server.join().unwrap();
    match step {
        Err(SendError::Socket(e)) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{way:?}: {e}"
        ),
        Ok(SendStep::Answered(said)) => assert!(said.is_empty()),
        other => panic!("{way:?}: unexpected {other:?}"),
    }
}

/// Makes closing `conn` send a TCP reset (`SO_LINGER` with a zero timeout).
fn socket2_linger_zero(conn: TcpStream) -> TcpStream {
    rustix::net::sockopt::set_socket_linger(&conn, Some(Duration::ZERO)).expect("linger");
    conn
}

#[test]
fn a_file_that_shrinks_mid_upload_is_an_error_whatever_the_way() {
    for way in WAYS {
        let dir = TempDir::new("send-shrink");
        let path = dir.path().join("shrinking.bin");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(64 * MIB as u64)
            .unwrap();
        let mut body = Form::new()
            .part(Part::file("f", &path))
            .build(&unscanned("shrink-boundary"))
            .unwrap();
        let (truncated_tx, truncated_rx) = mpsc::channel();
        let shrink = path.clone();
        let (client, server) = connect(move |mut conn| {
            let mut first = vec![0u8; MIB];
            conn.read_exact(&mut first).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&shrink)
                .unwrap()
                .set_len(32 * MIB as u64)
                .unwrap();
            truncated_tx.send(()).unwrap();
            let mut sink = Vec::new();
            let _ = conn.read_to_end(&mut sink);
        });
        let options = SendOptions {
            idle_timeout: Some(Duration::from_secs(10)),
            ..way.options()
        };
        let result = send_all(&mut body, &client, &options);
        truncated_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        drop(client);
        server.join().unwrap();
        match result {
            Err(SendError::Body(poster_core::Error::SizeChanged { .. })) => {}
            other => panic!("{way:?}: unexpected {other:?}"),
        }
    }
}

#[test]
fn an_idle_peer_times_out_and_so_does_a_deadline() {
    let dir = TempDir::new("send-idle");
    let path = sparse_file(&dir, "big.bin", 256 * MIB as u64);
    let build = || file_body("big", &path, "idle-boundary");
    for way in WAYS {
        an_idle_peer_and_a_deadline_with(way, &build);
    }
}

fn an_idle_peer_and_a_deadline_with(way: Way, build: &dyn Fn() -> Body) {
    // Never reads: the socket buffers fill, then nothing moves for the idle timeout.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (client, server) = connect(move |_conn| {
        let _ = done_rx.recv_timeout(Duration::from_secs(20));
    });
    let options = SendOptions {
        idle_timeout: Some(Duration::from_millis(300)),
        ..way.options()
    };
    let started = Instant::now();
    let result = send_all(&mut build(), &client, &options);
    assert!(
        matches!(result, Err(SendError::TimedOut)),
        "{way:?}: {result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    done_tx.send(()).unwrap();
    server.join().unwrap();

    // Reads a little at a time, so the idle timeout never fires: the deadline does.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (client, server) = connect(move |mut conn| {
        let mut piece = vec![0u8; 16 * 1024];
        while done_rx.try_recv().is_err() {
            if conn.read(&mut piece).unwrap_or(0) == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let options = SendOptions {
        idle_timeout: Some(Duration::from_secs(5)),
        deadline: Some(Instant::now() + Duration::from_millis(500)),
        ..way.options()
    };
    let started = Instant::now();
    let result = send_all(&mut build(), &client, &options);
    assert!(
        matches!(result, Err(SendError::TimedOut)),
        "{way:?}: {result:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "{way:?}: {took:?}"
    );
    done_tx.send(()).unwrap();
    drop(client);
    server.join().unwrap();
}
