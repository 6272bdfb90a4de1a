//! `Param`: the compiled base of `poster_rs.MultipartParam`. It holds one part's description in
//! typed fields the encoder reads directly, and renders the part through the core (header,
//! whole part, size), so no wire byte is produced in Python.
//!
//! The constructor takes the common case (a `str` name with a `str` or `bytes` value, or nothing
//! at all) natively: building 100,000 parameters then costs no Python frame each. Anything else
//! (bytes names, numbers, file objects, headers) is normalised by the subclass's
//! `_normalize_arguments`, which returns them as `Fields`.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use poster_core::header::PartHead;
use poster_core::{Form, Part, Source, single};
use pyo3::PyTraverseError;
use pyo3::exceptions::{
    PyAttributeError, PyNotImplementedError, PyOSError, PyTypeError, PyValueError,
};
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyType};

use crate::errors::to_pyerr;
use crate::escape::Escape;
use crate::parts::{SHARE_MIN, value_source};
use crate::raw::{dup_fd, set_gc_tracked};
use crate::reader::PyReader;

/// What `_normalize_arguments` returns (`_ParamFields` in the stub), read by attribute name.
#[derive(FromPyObject)]
struct Fields {
    name: Py<PyString>,
    value: Option<Py<PyAny>>,
    filename: Option<Py<PyString>>,
    filetype: Option<Py<PyString>>,
    filesize: Option<u64>,
    fileobj: Option<Py<PyAny>>,
    /// Where the file object's data begins.
    start: Option<u64>,
    headers: Option<Py<PyList>>,
}

/// One multipart/form-data parameter. Text is kept as Python `str` objects (no copy when the
/// parameter is made) and read as UTF-8 when the part is built, where text that cannot be sent
/// (lone surrogates) is refused.
#[pyclass(subclass, weakref, module = "poster_rs._poster_rs", name = "Param")]
pub(crate) struct ParamPy {
    #[pyo3(get, set)]
    name: Py<PyString>,
    /// A `str` or `bytes` value; `None` for a file.
    value: Option<Py<PyAny>>,
    #[pyo3(get, set)]
    filename: Option<Py<PyString>>,
    #[pyo3(get, set)]
    filetype: Option<Py<PyString>>,
    #[pyo3(get, set)]
    filesize: Option<u64>,
    #[pyo3(get)]
    cb: Option<Py<PyAny>>,
    /// A list of `(name, value)` string pairs.
    #[pyo3(get)]
    headers: Option<Py<PyList>>,
    #[pyo3(get, name = "_fileobj")]
    fileobj: Option<Py<PyAny>>,
    #[pyo3(get, name = "_path")]
    path: Option<Py<PyAny>>,
    #[pyo3(get, set, name = "_start")]
    start: Option<u64>,
}

fn is_text_or_bytes(value: &Bound<'_, PyAny>) -> bool {
    value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>()
}

/// The bytes of a `str` (as UTF-8) or `bytes` value.
fn value_bytes<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_str()?.as_bytes());
    }
    Ok(value.cast::<PyBytes>()?.as_bytes())
}

/// Whether `err` says "this object has no usable descriptor" (no `fileno`, a closed or in-memory
/// file) rather than a real failure.
fn means_no_descriptor(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyAttributeError>(py)
        || err.is_instance_of::<PyOSError>(py)
        || err.is_instance_of::<PyValueError>(py)
}

/// A duplicate of the file object's descriptor when it is backed by a regular file.
fn regular_file(fileobj: &Bound<'_, PyAny>) -> PyResult<Option<File>> {
    let py = fileobj.py();
    let fd = match fileobj.call_method0(intern!(py, "fileno")) {
        Ok(fd) => fd,
        Err(err) if means_no_descriptor(py, &err) => return Ok(None),
        Err(err) => return Err(err),
    };
    let Ok(fd) = fd.extract::<RawFd>() else {
        return Ok(None);
    };
    let file = dup_fd(fd)?;
    Ok(file.metadata().is_ok_and(|m| m.is_file()).then_some(file))
}

/// A path given as `str` or `bytes` (the exact bytes of a name that is not valid UTF-8).
pub(crate) fn path_of(path: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    if let Ok(bytes) = path.cast::<PyBytes>() {
        return Ok(PathBuf::from(OsStr::from_bytes(bytes.as_bytes())));
    }
    path.extract()
}

impl ParamPy {
    /// Calls `f` with the part's header fields read as UTF-8.
    fn with_head<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&PartHead<'_>) -> poster_core::Result<R>,
    ) -> PyResult<R> {
        let text = |s: &Option<Py<PyString>>| -> PyResult<Option<String>> {
            s.as_ref()
                .map(|s| s.bind(py).to_str().map(str::to_owned))
                .transpose()
        };
        let filename = text(&self.filename)?;
        let content_type = text(&self.filetype)?;
        let headers = self.header_pairs(py)?;
        let head = PartHead {
            name: self.name.bind(py).to_str()?,
            filename: filename.as_deref(),
            content_type: content_type.as_deref(),
            headers: &headers,
            is_file: self.value.is_none(),
        };
        f(&head).map_err(to_pyerr)
    }

    fn header_pairs(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        match &self.headers {
            Some(headers) => headers.bind(py).extract(),
            None => Ok(Vec::new()),
        }
    }

    fn name_str<'a>(&'a self, py: Python<'a>) -> PyResult<&'a str> {
        self.name.bind(py).to_str()
    }

    fn no_data(&self, py: Python<'_>) -> PyErr {
        PyTypeError::new_err(format!(
            "part {} has no value: give a value, a file object or a path",
            self.name
                .bind(py)
                .repr()
                .map_or_else(|_| "?".to_owned(), |r| r.to_string())
        ))
    }

    /// A file object's data: read with positioned reads from where the parameter was made when
    /// it is a regular file, else through its `read` after rewinding it there.
    fn fileobj_source(&self, fileobj: &Bound<'_, PyAny>) -> PyResult<Source> {
        let py = fileobj.py();
        if let Some(start) = self.start
            && let Some(file) = regular_file(fileobj)?
        {
            // A writable file may hold bytes not yet on disk; one that cannot flush has none.
            if let Err(err) = fileobj.call_method0(intern!(py, "flush"))
                && !means_no_descriptor(py, &err)
            {
                return Err(err);
            }
            return Ok(Source::File {
                file: Arc::new(file),
                offset: start,
                len: self.filesize,
            });
        }
        if let Some(start) = self.start {
            fileobj.call_method1(intern!(py, "seek"), (start,))?;
        }
        Ok(Source::Reader {
            reader: Box::new(PyReader::new(fileobj.clone().unbind(), self.start)),
            len: self.filesize,
        })
    }

    /// Adds the parameter to `form`: a plain text field goes into the form's shared buffers,
    /// anything else becomes a part.
    pub(crate) fn push_into(&self, py: Python<'_>, form: &mut Form) -> PyResult<()> {
        if let Some(value) = &self.value
            && self.filename.is_none()
            && self.filetype.is_none()
            && self.headers.is_none()
        {
            let data = value_bytes(value.bind(py))?;
            if data.len() < SHARE_MIN {
                form.push_field(self.name_str(py)?, data);
                return Ok(());
            }
        }
        form.push(self.to_part(py)?);
        Ok(())
    }

    pub(crate) fn to_part(&self, py: Python<'_>) -> PyResult<Part> {
        let source = if let Some(value) = &self.value {
            value_source(value.bind(py))?
                .ok_or_else(|| PyTypeError::new_err("a part's value must be str or bytes"))?
        } else if let Some(fileobj) = &self.fileobj {
            self.fileobj_source(fileobj.bind(py))?
        } else if let Some(path) = &self.path {
            Source::Path(path_of(path.bind(py))?)
        } else {
            return Err(self.no_data(py));
        };
        let mut part = Part::new(self.name_str(py)?, source);
        if let Some(filename) = &self.filename {
            part = part.filename(filename.bind(py).to_str()?);
        }
        if let Some(content_type) = &self.filetype {
            part = part.content_type(content_type.bind(py).to_str()?);
        }
        for (key, value) in self.header_pairs(py)? {
            part = part.header(key, value);
        }
        Ok(part)
    }

    pub(crate) fn has_callback(&self) -> bool {
        self.cb.is_some()
    }

    /// Whether a field may refer to a container (and so to the parameter itself).
    fn holds_containers(&self) -> bool {
        self.cb.is_some() || self.fileobj.is_some() || self.headers.is_some() || self.path.is_some()
    }

    /// Sets a field through `set`, then has the collector track the parameter if it now may
    /// be part of a cycle.
    fn set_field(slf: &Bound<'_, Self>, set: impl FnOnce(&mut Self)) {
        let holds_containers = {
            let mut this = slf.borrow_mut();
            set(&mut this);
            this.holds_containers()
        };
        if holds_containers {
            set_gc_tracked(slf, true);
        }
    }
}

/// Whether instances of `class` have a `__dict__` (arbitrary attributes can make cycles).
fn has_instance_dict(class: &Bound<'_, PyType>) -> PyResult<bool> {
    Ok(class
        .getattr(intern!(class.py(), "__dictoffset__"))?
        .extract::<isize>()?
        != 0)
}

#[pymethods]
impl ParamPy {
    #[new]
    #[classmethod]
    #[allow(clippy::too_many_arguments)] // poster's constructor
    #[pyo3(
        signature = (name, value=None, filename=None, filetype=None, filesize=None, fileobj=None, cb=None, *, headers=None),
        text_signature = "(name, value=None, filename=None, filetype=None, filesize=None, fileobj=None, cb=None, *, headers=None)"
    )]
    fn new(
        cls: &Bound<'_, PyType>,
        name: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        filename: Option<&Bound<'_, PyAny>>,
        filetype: Option<&Bound<'_, PyAny>>,
        filesize: Option<&Bound<'_, PyAny>>,
        fileobj: Option<&Bound<'_, PyAny>>,
        cb: Option<Py<PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if let Ok(name) = name.cast_exact::<PyString>()
            && value.is_none_or(is_text_or_bytes)
            && filetype.is_none_or(PyAnyMethods::is_exact_instance_of::<PyString>)
            && filename.is_none()
            && filesize.is_none()
            && fileobj.is_none()
            && headers.is_none()
        {
            return Ok(ParamPy {
                name: name.clone().unbind(),
                value: value.map(|v| v.clone().unbind()),
                filename: None,
                filetype: filetype.map(PyAnyMethods::extract).transpose()?,
                filesize: None,
                cb,
                headers: None,
                fileobj: None,
                path: None,
                start: None,
            });
        }
        let py = cls.py();
        let arguments = (name, value, filename, filetype, filesize, fileobj, headers);
        let fields: Fields = cls
            .call_method1(intern!(py, "_normalize_arguments"), arguments)?
            .extract()?;
        Ok(ParamPy {
            name: fields.name,
            value: fields.value,
            filename: fields.filename,
            filetype: fields.filetype,
            filesize: fields.filesize,
            cb,
            headers: fields.headers,
            fileobj: fields.fileobj,
            path: None,
            start: fields.start,
        })
    }

    /// Stops the cycle collector from tracking a parameter that cannot be part of a cycle; see
    /// `set_gc_tracked`. (The fields were set by `__new__`.)
    #[pyo3(signature = (*_args, **_kwargs))]
    fn __init__(
        slf: &Bound<'_, Self>,
        _args: &Bound<'_, pyo3::types::PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<()> {
        if !slf.borrow().holds_containers() && !has_instance_dict(&slf.get_type())? {
            set_gc_tracked(slf, false);
        }
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.cb)?;
        visit.call(&self.headers)?;
        visit.call(&self.fileobj)?;
        visit.call(&self.path)?;
        Ok(())
    }

    fn __clear__(&mut self) {
        self.cb = None;
        self.headers = None;
        self.fileobj = None;
        self.path = None;
    }

    #[setter]
    fn set_cb(slf: &Bound<'_, Self>, cb: Option<Py<PyAny>>) {
        Self::set_field(slf, |this| this.cb = cb);
    }

    #[setter]
    fn set_headers(slf: &Bound<'_, Self>, headers: Option<Py<PyList>>) {
        Self::set_field(slf, |this| this.headers = headers);
    }

    #[setter(_fileobj)]
    fn set_fileobj(slf: &Bound<'_, Self>, fileobj: Option<Py<PyAny>>) {
        Self::set_field(slf, |this| this.fileobj = fileobj);
    }

    #[setter(_path)]
    fn set_path(slf: &Bound<'_, Self>, path: Option<Py<PyAny>>) {
        Self::set_field(slf, |this| this.path = path);
    }

    /// Checks and converts constructor arguments other than a `str` name with a `str` or
    /// `bytes` value; subclasses provide it.
    #[classmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(text_signature = "($cls, name, value, filename, filetype, filesize, fileobj, headers)")]
    fn _normalize_arguments(
        _cls: &Bound<'_, PyType>,
        _name: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _filename: &Bound<'_, PyAny>,
        _filetype: &Bound<'_, PyAny>,
        _filesize: &Bound<'_, PyAny>,
        _fileobj: &Bound<'_, PyAny>,
        _headers: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        Err(PyNotImplementedError::new_err(
            "Param takes a str name and a str or bytes value; use poster_rs.MultipartParam",
        ))
    }

    /// The value: `str` or `bytes`, or `None` for a file parameter.
    #[getter]
    fn value(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.value.as_ref().map(|v| v.clone_ref(py))
    }

    #[setter]
    fn set_value(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        if let Some(value) = value
            && !is_text_or_bytes(value)
        {
            return Err(PyTypeError::new_err(format!(
                "value must be str, bytes or None, not {}",
                value.get_type().name()?
            )));
        }
        self.value = value.map(|v| v.clone().unbind());
        Ok(())
    }

    /// The part's header block, starting with `--boundary`.
    #[pyo3(signature = (boundary, *, escape=Escape::default()), text_signature = "($self, boundary, *, escape='quoted')")]
    fn encode_hdr<'py>(
        &self,
        py: Python<'py>,
        boundary: &str,
        escape: Escape,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let header = self.with_head(py, |head| single::header(boundary, head, escape.0))?;
        Ok(PyBytes::new(py, &header))
    }

    /// Bytes this part takes in the body: header, data and the CRLF after it.
    #[pyo3(signature = (boundary, *, escape=Escape::default()), text_signature = "($self, boundary, *, escape='quoted')")]
    fn get_size(&self, py: Python<'_>, boundary: &str, escape: Escape) -> PyResult<u64> {
        let data_len = match (self.filesize, &self.value) {
            (Some(size), _) => size,
            (None, Some(value)) => value_bytes(value.bind(py))?.len() as u64,
            (None, None) => {
                return Err(PyValueError::new_err(format!(
                    "part {}: the size of its file object is unknown",
                    self.name.bind(py).repr()?
                )));
            }
        };
        self.with_head(py, |head| {
            single::encoded_len(boundary, head, escape.0, data_len)
        })
    }

    /// The whole part (header, data, CRLF) with `data`, or the value when `data` is `None`.
    #[pyo3(signature = (boundary, data=None, *, escape=Escape::default()), text_signature = "($self, boundary, data=None, *, escape='quoted')")]
    fn _encode<'py>(
        &self,
        py: Python<'py>,
        boundary: &str,
        data: Option<&[u8]>,
        escape: Escape,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let value = self.value.as_ref().map(|v| v.bind(py));
        let data = match (data, &value) {
            (Some(data), _) => data,
            (None, Some(value)) => value_bytes(value)?,
            (None, None) => return Err(self.no_data(py)),
        };
        let part = self.with_head(py, |head| single::encode(boundary, head, escape.0, data))?;
        Ok(PyBytes::new(py, &part))
    }

    /// A checker that raises `BoundaryError` when the data fed to it contains the delimiter.
    fn _data_checker(&self, py: Python<'_>, boundary: &str) -> PyResult<DataCheckerPy> {
        single::DataChecker::new(boundary, self.name_str(py)?)
            .map(|checker| DataCheckerPy(Box::new(checker)))
            .map_err(to_pyerr)
    }
}

/// Scans a part's data block by block for the multipart delimiter. Boxed: the checker holds
/// SIMD searchers aligned to 32 bytes, while Python allocates objects on 16-byte boundaries;
/// inline, their aligned loads would fault.
#[pyclass(module = "poster_rs._poster_rs", name = "DataChecker")]
pub(crate) struct DataCheckerPy(Box<single::DataChecker>);

const _: () = assert!(std::mem::align_of::<DataCheckerPy>() <= 16);
const _: () = assert!(std::mem::align_of::<ParamPy>() <= 16);

#[pymethods]
impl DataCheckerPy {
    /// Checks the next block; raises `BoundaryError` when the delimiter has appeared.
    fn check(&mut self, block: &[u8]) -> PyResult<()> {
        self.0.check(block).map_err(to_pyerr)
    }
}
