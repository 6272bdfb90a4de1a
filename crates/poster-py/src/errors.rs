//! The one place where encoder errors become Python exceptions.
//!
//! `poster_rs`'s own exception classes are defined in Python (`poster_rs.errors`, module
//! `poster_rs`), so they can inherit from both `PosterError` and a standard exception and pickle
//! by reference; the classes are looked up once and raised from here.

use poster_core::Error;
use poster_core::receive::FormDataError;
use pyo3::PyErr;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyNotADirectoryError, PyOSError, PyPermissionError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The exception classes of `poster_rs.errors` raised by the core.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PosterClass {
    Boundary,
    FileChanged,
    Header,
    NotARegularFile,
    NotSeekable,
}

impl PosterClass {
    fn name(self) -> &'static str {
        match self {
            PosterClass::Boundary => "BoundaryError",
            PosterClass::FileChanged => "FileChangedError",
            PosterClass::Header => "HeaderError",
            PosterClass::NotARegularFile => "NotARegularFileError",
            PosterClass::NotSeekable => "NotSeekableError",
        }
    }

    fn cell(self) -> &'static PyOnceLock<Py<PyType>> {
        static BOUNDARY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        static FILE_CHANGED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        static HEADER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        static NOT_A_REGULAR_FILE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        static NOT_SEEKABLE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        match self {
            PosterClass::Boundary => &BOUNDARY,
            PosterClass::FileChanged => &FILE_CHANGED,
            PosterClass::Header => &HEADER,
            PosterClass::NotARegularFile => &NOT_A_REGULAR_FILE,
            PosterClass::NotSeekable => &NOT_SEEKABLE,
        }
    }

    /// An instance with `message` as its argument and `attributes` set on it.
    pub(crate) fn error<'py>(
        self,
        py: Python<'py>,
        message: String,
        attributes: &[(&str, Bound<'py, PyAny>)],
    ) -> PyErr {
        let made = || -> PyResult<PyErr> {
            let class = self.cell().import(py, "poster_rs.errors", self.name())?;
            let exception = class.call1((message,))?;
            for (name, value) in attributes {
                exception.setattr(*name, value)?;
            }
            Ok(PyErr::from_value(exception))
        };
        made().unwrap_or_else(|err| err)
    }
}

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
    Python::attach(|py| convert(py, err))
}

fn convert(py: Python<'_>, err: Error) -> PyErr {
    let message = err.to_string();
    let text = |s: &str| pyo3::types::PyString::new(py, s).into_any();
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
            match kind.errno() {
                Some(errno) => os_error_with_path(
                    &std::io::Error::from_raw_os_error(errno),
                    message,
                    Some(path),
                ),
                None => PosterClass::NotARegularFile.error(py, message, &[]),
            }
        }
        Error::SizeChanged { ref part, .. } | Error::FileReplaced { ref part, .. } => {
            let part = text(part);
            PosterClass::FileChanged.error(py, message, &[("part", part)])
        }
        Error::BoundaryInData { ref part, offset } => {
            let Ok(offset) = offset.into_pyobject(py);
            let attributes = [("part", text(part)), ("offset", offset.into_any())];
            PosterClass::Boundary.error(py, message, &attributes)
        }
        Error::InvalidBoundary { .. } => PosterClass::Boundary.error(py, message, &[]),
        Error::InvalidHeader { ref part, .. } => {
            PosterClass::Header.error(py, message, &[("part", text(part))])
        }
        Error::NotSeekable { .. } => PosterClass::NotSeekable.error(py, message, &[]),
        Error::Random(_) => PyOSError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

/// Recovers the encoder error an `io::Error` carries (from the core's `Read`/`Seek`
/// implementations), so it is raised as its own exception.
pub(crate) fn from_io(err: std::io::Error) -> PyErr {
    if !err
        .get_ref()
        .is_some_and(<dyn std::error::Error + Send + Sync>::is::<Error>)
    {
        return PyErr::from(err);
    }
    match err
        .into_inner()
        .map(<dyn std::error::Error + Send + Sync>::downcast::<Error>)
    {
        Some(Ok(encoder)) => to_pyerr(*encoder),
        // Not reached: the check above saw an encoder error inside.
        Some(Err(other)) => PyOSError::new_err(other.to_string()),
        None => PyOSError::new_err("I/O error"),
    }
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

/// A received body the parser refused: `ValueError(message, is_limit)`, `is_limit` telling a
/// body over a limit (too many parts, headers too long) from a malformed one.
pub(crate) fn form_data_error(err: &FormDataError) -> PyErr {
    PyValueError::new_err((err.to_string(), err.is_limit()))
}
