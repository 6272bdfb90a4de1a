//! The one place where encoder errors become Python exceptions.

use poster_core::Error;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyNotADirectoryError, PyOSError, PyPermissionError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::{PyErr, create_exception};

create_exception!(
    _poster_rs,
    BoundaryError,
    PyValueError,
    "The boundary is invalid, or the multipart delimiter occurs in a part's data."
);
create_exception!(
    _poster_rs,
    FileChangedError,
    PyOSError,
    "A file changed (size or identity) between building the body and streaming it; the body \
     would disagree with its Content-Length, so streaming stops."
);
create_exception!(
    _poster_rs,
    NotSeekableError,
    PyOSError,
    "The body cannot move to that position (a reader of unknown size or one that cannot rewind)."
);

fn os_error_with_path(err: &std::io::Error, message: String, path: Option<String>) -> PyErr {
    let errno = err.raw_os_error();
    let args = (errno.unwrap_or(0), message, path);
    match err.kind() {
        std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(args),
        std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(args),
        std::io::ErrorKind::IsADirectory => PyIsADirectoryError::new_err(args),
        std::io::ErrorKind::NotADirectory => PyNotADirectoryError::new_err(args),
        _ => PyOSError::new_err(args),
    }
}

/// Converts an encoder error into the matching Python exception. An error raised by Python code
/// (a file object's `read`) comes back as the original exception.
pub(crate) fn to_pyerr(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::Io { source, path, .. } => {
            if source
                .get_ref()
                .is_some_and(<dyn std::error::Error + Send + Sync>::is::<PyErr>)
            {
                return PyErr::from(source);
            }
            if source.raw_os_error().is_none() {
                return PyOSError::new_err(message);
            }
            let path = path.map(|p| p.to_string_lossy().into_owned());
            os_error_with_path(&source, message, path)
        }
        Error::NotARegularFile { path, kind } => {
            let path = path.to_string_lossy().into_owned();
            if kind == "a directory" {
                PyIsADirectoryError::new_err((21, message, path))
            } else {
                PyValueError::new_err(message)
            }
        }
        Error::SizeChanged { .. } | Error::FileReplaced { .. } => {
            FileChangedError::new_err(message)
        }
        Error::BoundaryInData { .. } | Error::InvalidBoundary { .. } => {
            BoundaryError::new_err(message)
        }
        Error::NotSeekable { .. } => NotSeekableError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

/// Registers the exception types on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("BoundaryError", py.get_type::<BoundaryError>())?;
    m.add("FileChangedError", py.get_type::<FileChangedError>())?;
    m.add("NotSeekableError", py.get_type::<NotSeekableError>())?;
    Ok(())
}

/// Converts a failure of the native send path: the body's own errors as above, socket errors
/// as the matching `OSError` subclass (`BrokenPipeError`, `ConnectionResetError`, ...), and a
/// timeout as `TimeoutError`, as `socket.sendall` raises them.
pub(crate) fn send_error_to_pyerr(err: poster_core::send::SendError) -> PyErr {
    use poster_core::send::SendError;
    match err {
        SendError::Body(err) => to_pyerr(err),
        SendError::Socket(err) => PyErr::from(err),
        SendError::TimedOut => {
            pyo3::exceptions::PyTimeoutError::new_err("timed out sending the request body")
        }
    }
}
