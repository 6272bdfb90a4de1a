//! File parts: failures at build time, files that change after the body was built, huge sparse
//! files, and open files handed in by the caller.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use common::{TempDir, fill_all, options, read_all};
use poster_core::{Body, Error, EscapeMode, FileKind, Form, FormOptions, Part, Source};

const B: &str = "XYZXYZXYZ";

fn opts() -> FormOptions {
    options(B, EscapeMode::Quoted)
}

fn file_body(path: &Path) -> Body {
    Form::new()
        .part(Part::text("title", "t"))
        .part(Part::file("upload", path))
        .build(&opts())
        .expect("build")
}

fn expected_body(filename: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(
        b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\r\nt\r\n",
    );
    out.extend_from_slice(
        format!(
            "--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"upload\"; \
             filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n--XYZXYZXYZ--\r\n");
    out
}

/// Reads the body to the end through `fill`, expecting an error.
fn read_err(body: &mut Body, buf: usize) -> Error {
    match fill_all(body, buf) {
        Ok(bytes) => panic!("expected an error, read {} bytes", bytes.len()),
        Err(e) => e,
    }
}

#[test]
fn file_by_path_streams_its_bytes() {
    let dir = TempDir::new("files-ok");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let path = dir.write("data.bin", &data);
    let mut body = file_body(&path);
    let expected = expected_body("data.bin", &data);
    assert_eq!(body.content_length(), Some(expected.len() as u64));
    assert_eq!(read_all(&mut body).unwrap(), expected);
    // Released and read again from the start: the file is reopened.
    body.release();
    body.seek(0).unwrap();
    assert_eq!(fill_all(&mut body, 4096).unwrap(), expected);
}

#[test]
fn empty_file_is_a_valid_part() {
    let dir = TempDir::new("files-empty");
    let path = dir.write("empty.txt", b"");
    let mut body = file_body(&path);
    let expected = expected_body("empty.txt", b"");
    assert_eq!(body.content_length(), Some(expected.len() as u64));
    assert_eq!(read_all(&mut body).unwrap(), expected);
}

#[test]
fn missing_file_fails_at_build() {
    let dir = TempDir::new("files-missing");
    let path = dir.path().join("nope.txt");
    let err = Form::new()
        .part(Part::file("upload", &path))
        .build(&opts())
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(ErrorKind::NotFound), "{err:?}");
    match &err {
        Error::Io {
            path: Some(p),
            part,
            ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(part, "upload");
        }
        other => panic!("expected Error::Io with the path, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("nope.txt") && msg.contains("upload"), "{msg}");
}

#[test]
fn directory_fails_at_build() {
    let dir = TempDir::new("files-dir");
    let err = Form::new()
        .part(Part::file("upload", dir.path()))
        .build(&opts())
        .unwrap_err();
    match &err {
        Error::NotARegularFile { path, kind } => {
            assert_eq!(path, dir.path());
            assert_eq!(*kind, FileKind::Directory);
        }
        other => panic!("expected NotARegularFile, got {other:?}"),
    }
    assert!(err.to_string().contains("a directory"), "{err}");
}

#[test]
fn fifo_fails_at_build_without_blocking() {
    let dir = TempDir::new("files-fifo");
    let path = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");
    let err = Form::new()
        .part(Part::file("upload", &path))
        .build(&opts())
        .unwrap_err();
    match &err {
        Error::NotARegularFile { path: p, kind } => {
            assert_eq!(p, &path);
            assert_eq!(*kind, FileKind::Fifo);
        }
        other => panic!("expected NotARegularFile, got {other:?}"),
    }
}

#[test]
fn symlink_to_a_file_is_followed() {
    let dir = TempDir::new("files-symlink");
    let target = dir.write("target.bin", b"hello");
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut body = file_body(&link);
    assert_eq!(
        read_all(&mut body).unwrap(),
        expected_body("link.bin", b"hello")
    );
}

fn assert_size_changed(err: &Error, path: &Path, expected: u64, actual: u64) {
    match err {
        Error::SizeChanged {
            part,
            path: p,
            expected: e,
            actual: a,
        } => {
            assert_eq!(part, "upload");
            assert_eq!(p.as_deref(), Some(path));
            assert_eq!(*e, expected, "expected size");
            assert_eq!(*a, actual, "actual size");
        }
        other => panic!("expected SizeChanged, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&expected.to_string()), "{msg}");
    assert!(msg.contains(&actual.to_string()), "{msg}");
}

#[test]
fn file_truncated_after_build_fails_while_reading() {
    let dir = TempDir::new("files-trunc");
    let path = dir.write("data.bin", &[7u8; 1000]);
    let mut body = file_body(&path);
    let len = body.content_length().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(400)
        .unwrap();
    let err = read_err(&mut body, 64 * 1024);
    assert_size_changed(&err, &path, 1000, 400);
    // The Content-Length was never contradicted by bytes handed out.
    assert!(body.position() < len);
    // As an io::Error it is InvalidData and keeps the message.
    let mut body = file_body(&path);
    std::fs::write(&path, [1u8; 10]).unwrap();
    let io_err = read_all(&mut body).unwrap_err();
    assert_eq!(io_err.kind(), ErrorKind::InvalidData);
    assert!(io_err.to_string().contains("changed size"), "{io_err}");
}

#[test]
fn file_truncated_while_streaming_fails() {
    let dir = TempDir::new("files-trunc-mid");
    let path = dir.write("data.bin", &vec![7u8; 100_000]);
    let mut body = file_body(&path);
    let mut buf = vec![0u8; 1000];
    // Read until the stream is inside the file's data, so the file is open.
    let start = body.part_starts()[1];
    while body.position() < start + 2000 {
        body.fill(&mut buf).unwrap();
    }
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(50_000)
        .unwrap();
    let err = read_err(&mut body, 1000);
    assert_size_changed(&err, &path, 100_000, 50_000);
}

#[test]
fn file_grown_after_build_fails_while_reading() {
    let dir = TempDir::new("files-grow");
    let path = dir.write("data.bin", &[7u8; 1000]);
    let mut body = file_body(&path);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[8u8; 24])
        .unwrap();
    let err = read_err(&mut body, 64 * 1024);
    assert_size_changed(&err, &path, 1000, 1024);
}

#[test]
fn file_grown_while_streaming_fails_at_its_end() {
    let dir = TempDir::new("files-grow-mid");
    let path = dir.write("data.bin", &vec![7u8; 100_000]);
    let mut body = file_body(&path);
    let mut buf = vec![0u8; 1000];
    let start = body.part_starts()[1];
    while body.position() < start + 2000 {
        body.fill(&mut buf).unwrap();
    }
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[8u8; 10])
        .unwrap();
    let err = read_err(&mut body, 1000);
    assert_size_changed(&err, &path, 100_000, 100_010);
    // The stream stops before the closing delimiter: the short body is never completed.
    assert!(!body.is_finished());
    assert!(body.position() < body.content_length().unwrap() - 15);
}

#[test]
fn file_replaced_after_build_fails_while_reading() {
    let dir = TempDir::new("files-replace");
    let path = dir.write("data.bin", b"original");
    let mut body = file_body(&path);
    // Same size, other inode: only the identity check can notice.
    let tmp = dir.write("data.bin.new", b"replaced");
    std::fs::rename(&tmp, &path).unwrap();
    let err = read_err(&mut body, 64 * 1024);
    match &err {
        Error::FileReplaced { part, path: p } => {
            assert_eq!(part, "upload");
            assert_eq!(p, &path);
        }
        other => panic!("expected FileReplaced, got {other:?}"),
    }
    assert!(err.to_string().contains("replaced"), "{err}");
}

#[test]
fn file_replaced_while_streaming_fails_at_its_end() {
    let dir = TempDir::new("files-replace-mid");
    let path = dir.write("data.bin", &vec![1u8; 100_000]);
    let mut body = file_body(&path);
    let mut buf = vec![0u8; 1000];
    let start = body.part_starts()[1];
    while body.position() < start + 2000 {
        body.fill(&mut buf).unwrap();
    }
    let tmp = dir.write("data.bin.new", &vec![2u8; 100_000]);
    std::fs::rename(&tmp, &path).unwrap();
    let err = read_err(&mut body, 1000);
    assert!(
        matches!(&err, Error::FileReplaced { path: p, .. } if p == &path),
        "{err:?}"
    );
}

#[test]
fn file_deleted_after_build_fails_while_reading() {
    let dir = TempDir::new("files-deleted");
    let path = dir.write("data.bin", b"abc");
    let mut body = file_body(&path);
    std::fs::remove_file(&path).unwrap();
    let err = read_err(&mut body, 64 * 1024);
    assert_eq!(err.io_kind(), Some(ErrorKind::NotFound), "{err:?}");
}

#[test]
fn huge_sparse_file_has_an_exact_length_and_seeks_near_its_end() {
    const SIZE: u64 = 5 << 30;
    let dir = TempDir::new("files-sparse");
    let path = dir.path().join("sparse.bin");
    let file = File::create(&path).unwrap();
    file.set_len(SIZE).unwrap();
    drop(file);
    let closing = b"\r\n--XYZXYZXYZ--\r\n";
    for skip_check in [false, true] {
        let options = FormOptions {
            skip_stream_boundary_check: skip_check,
            ..opts()
        };
        let mut body = Form::new()
            .part(Part::file("upload", &path))
            .build(&options)
            .unwrap();
        let header = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"upload\"; \
                       filename=\"sparse.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n";
        let len = header.len() as u64 + SIZE + closing.len() as u64;
        assert_eq!(body.content_length(), Some(len));
        assert!(len > u64::from(u32::MAX));
        assert_eq!(body.part_starts(), &[0, header.len() as u64 + SIZE + 2]);

        // Near the end: zeros, then the closing delimiter.
        body.seek(len - 100).unwrap();
        assert_eq!(body.position(), len - 100);
        let tail = read_all(&mut body).unwrap();
        assert_eq!(tail.len(), 100);
        let zeros = 100 - closing.len();
        assert!(tail[..zeros].iter().all(|&b| b == 0));
        assert_eq!(&tail[zeros..], closing);

        // Through io::Seek from the end, with a small buffer.
        let at = body.seek_from_end(-5000);
        assert_eq!(at, len - 5000);
        let tail = fill_all(&mut body, 333).unwrap();
        assert_eq!(tail.len(), 5000);
        assert!(tail[..5000 - closing.len()].iter().all(|&b| b == 0));
        assert!(tail.ends_with(closing));

        // The first bytes, then a jump over the file: no full read needed.
        body.seek(0).unwrap();
        let mut first = vec![0u8; header.len() + 10];
        body.read_exact(&mut first).unwrap();
        assert_eq!(&first[..header.len()], header);
        assert!(first[header.len()..].iter().all(|&b| b == 0));
        body.seek(len).unwrap();
        assert!(read_all(&mut body).unwrap().is_empty());
    }
}

/// `io::Seek` on the body as a small extension for the test above.
trait SeekFromEnd {
    fn seek_from_end(&mut self, delta: i64) -> u64;
}

impl SeekFromEnd for Body {
    fn seek_from_end(&mut self, delta: i64) -> u64 {
        Seek::seek(self, SeekFrom::End(delta)).unwrap()
    }
}

#[test]
fn open_file_source_reads_from_its_offset_without_moving_the_file() {
    let dir = TempDir::new("files-open");
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let path = dir.write("data.bin", &data);
    let mut file = File::open(&path).unwrap();
    file.seek(SeekFrom::Start(3)).unwrap();
    let file = Arc::new(file);
    for (offset, len) in [
        (0u64, None),
        (100, None),
        (100, Some(9_900u64)),
        (10_000, None),
    ] {
        let mut body = Form::new()
            .part(
                Part::new(
                    "upload",
                    Source::File {
                        file: Arc::clone(&file),
                        offset,
                        len,
                    },
                )
                .filename("d.bin"),
            )
            .build(&opts())
            .unwrap();
        let expected = {
            let mut e = b"--XYZXYZXYZ\r\nContent-Disposition: form-data; name=\"upload\"; \
                          filename=\"d.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                .to_vec();
            e.extend_from_slice(&data[offset as usize..]);
            e.extend_from_slice(b"\r\n--XYZXYZXYZ--\r\n");
            e
        };
        assert_eq!(body.content_length(), Some(expected.len() as u64));
        assert_eq!(read_all(&mut body).unwrap(), expected, "offset {offset}");
        body.seek(expected.len() as u64 / 2).unwrap();
        assert_eq!(
            read_all(&mut body).unwrap(),
            &expected[expected.len() / 2..],
            "offset {offset}"
        );
    }
    // The file's own position is untouched.
    let mut handle: &File = &file;
    assert_eq!(handle.stream_position().unwrap(), 3);
}

#[test]
fn open_file_source_that_is_a_directory_fails_at_build() {
    let dir = TempDir::new("files-open-dir");
    let handle = File::open(dir.path()).unwrap();
    let err = Form::new()
        .part(Part::new(
            "upload",
            Source::File {
                file: Arc::new(handle),
                offset: 0,
                len: None,
            },
        ))
        .build(&opts())
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(ErrorKind::InvalidInput), "{err:?}");
}

#[test]
fn open_file_truncated_after_build_fails_while_reading() {
    let dir = TempDir::new("files-open-trunc");
    let path = dir.write("data.bin", &[5u8; 4096]);
    let file = Arc::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap(),
    );
    let mut body = Form::new()
        .part(Part::new(
            "upload",
            Source::File {
                file: Arc::clone(&file),
                offset: 0,
                len: None,
            },
        ))
        .build(&opts())
        .unwrap();
    file.set_len(1000).unwrap();
    let err = read_err(&mut body, 64 * 1024);
    assert!(
        matches!(
            err,
            Error::SizeChanged {
                path: None,
                expected: 4096,
                actual: 1000,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn empty_file_grown_after_build_fails_while_reading() {
    let dir = TempDir::new("files-empty-grow");
    let path = dir.write("empty.txt", b"");
    let mut body = file_body(&path);
    std::fs::write(&path, b"now with data").unwrap();
    match fill_all(&mut body, 64 * 1024) {
        Ok(bytes) => panic!(
            "the grown file went out as an empty part ({} bytes, none of them its new data)",
            bytes.len()
        ),
        Err(err) => assert_size_changed(&err, &path, 0, 13),
    }
}

#[test]
fn open_file_slice_sends_exactly_that_slice() {
    // An explicit length sends that slice of the file; more than the file holds is refused.
    let dir = TempDir::new("files-open-len");
    let data: Vec<u8> = (0..100u8).collect();
    let path = dir.write("data.bin", &data);
    let mut body = Form::new()
        .part(Part::new(
            "upload",
            Source::File {
                file: Arc::new(File::open(&path).unwrap()),
                offset: 10,
                len: Some(50),
            },
        ))
        .build(&opts())
        .unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut body, &mut out).unwrap();
    assert_eq!(out.len() as u64, body.content_length().unwrap());
    assert!(out.windows(50).any(|w| w == &data[10..60]));
    let err = Form::new()
        .part(Part::new(
            "upload",
            Source::File {
                file: Arc::new(File::open(&path).unwrap()),
                offset: 10,
                len: Some(91),
            },
        ))
        .build(&opts())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeChanged {
                path: None,
                expected: 91,
                actual: 90,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn released_file_is_reopened_and_rechecked() {
    let dir = TempDir::new("files-release");
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 97) as u8).collect();
    let path = dir.write("data.bin", &data);
    let expected = expected_body("data.bin", &data);
    let mut body = file_body(&path);
    let mut first = vec![0u8; 20_000];
    body.read_exact(&mut first).unwrap();
    body.release();
    let mut rest = read_all(&mut body).unwrap();
    first.append(&mut rest);
    assert_eq!(first, expected);

    let mut body = file_body(&path);
    let mut buf = vec![0u8; 20_000];
    body.read_exact(&mut buf).unwrap();
    body.release();
    let tmp = dir.write("data.bin.new", &data);
    std::fs::rename(&tmp, &path).unwrap();
    let err = fill_all(&mut body, 4096).unwrap_err();
    assert!(matches!(err, Error::FileReplaced { .. }), "{err:?}");
}

/// `fill_uninit` writes exactly the bytes `fill` does, for every chunk size and source kind,
/// and leaves nothing it did not write: the buffer starts full of a marker byte, and every
/// byte handed back must be the body's.
#[test]
#[allow(unsafe_code)]
fn fill_uninit_produces_exactly_the_bodys_bytes() {
    use std::mem::MaybeUninit;
    let dir = TempDir::new("uninit");
    let data: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = dir.write("data.bin", &data);
    let build = || {
        Form::new()
            .part(Part::text("a", "text"))
            .part(Part::file("f", &path))
            .part(common::reader_part("r", &data[..123_457]))
            .part(Part::file("empty", dir.write("empty.bin", b"")))
            .build(&options("uninit-boundary", EscapeMode::Quoted))
            .unwrap()
    };
    let expected = fill_all(&mut build(), 4096).unwrap();
    for size in [1, 7, 4096, 65_536, 262_144, 1 << 20] {
        let mut body = build();
        let mut out = Vec::new();
        let mut buf = vec![MaybeUninit::new(0xA5u8); size];
        loop {
            let n = body.fill_uninit(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            // SAFETY: every element was initialised (to 0xA5) when the buffer was made, and
            // fill_uninit only ever writes initialised bytes.
            out.extend(buf[..n].iter().map(|b| unsafe { b.assume_init() }));
        }
        assert!(out == expected, "chunk size {size}: bytes differ");
    }
}
