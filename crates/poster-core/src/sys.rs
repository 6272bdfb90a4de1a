//! The calls that differ between Unix systems, each with the portable fallback used where the
//! faster one does not exist. Linux is where these paths are tested; macOS and FreeBSD are
//! checked to compile.

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};

/// Opens a directory only to look files up relative to it.
///
/// Linux, Android and FreeBSD have `O_PATH`, which needs search permission on the directory
/// and no read permission; elsewhere the directory is opened for reading, which fails on an
/// unreadable directory, and the caller then measures by full path instead.
pub(crate) fn open_dir_for_lookups(dir: &Path) -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let access = OFlags::PATH;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let access = OFlags::RDONLY;
    rustix::fs::open(
        dir,
        access | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Tells the kernel the file will be read sequentially from `offset` (a bigger read-ahead).
///
/// A hint only: failure changes nothing. macOS and the other systems without
/// `posix_fadvise` already detect sequential reads on their own, so there it does nothing.
pub(crate) fn advise_sequential(file: &File, offset: u64) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        let _ = rustix::fs::fadvise(file, offset, None, rustix::fs::Advice::Sequential);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let _ = (file, offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_files_up_relative_to_an_opened_directory() {
        let dir = std::env::temp_dir().join(format!("poster-core-sys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("five"), b"12345").unwrap();
        let fd = open_dir_for_lookups(&dir).unwrap();
        let stat = rustix::fs::statat(&fd, "five", rustix::fs::AtFlags::empty()).unwrap();
        assert_eq!(stat.st_size, 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_path_that_is_not_a_directory() {
        let path =
            std::env::temp_dir().join(format!("poster-core-sys-file-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        assert!(open_dir_for_lookups(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sequential_advice_never_fails_the_read() {
        let path = std::env::temp_dir().join(format!("poster-core-sys-adv-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let file = File::open(&path).unwrap();
        advise_sequential(&file, 1);
        advise_sequential(&file, u64::MAX);
        let mut buf = [0u8; 2];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 1).unwrap();
        assert_eq!(&buf, b"bc");
        std::fs::remove_file(&path).unwrap();
    }
}
