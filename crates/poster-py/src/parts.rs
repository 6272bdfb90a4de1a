//! Turning Python form items into encoder parts.
//!
//! Plain `(str, str | bytes)` pairs are read here directly, so a form of 100,000 fields costs no
//! Python object per field; anything else goes through the Python layer's `normalize(index,
//! item)`, which returns a part spec tuple.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;

use poster_core::{Form, Part, Source};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::raw::dup_fd;
use crate::reader::PyReader;

/// Values at least this large are shared with Python rather than copied.
const SHARE_MIN: usize = 64 * 1024;

fn value_source(value: &Bound<'_, PyAny>) -> PyResult<Option<Source>> {
    if let Ok(s) = value.cast_exact::<PyString>() {
        let text = s.to_str()?;
        return Ok(Some(if text.len() >= SHARE_MIN {
            Source::Bytes(Arc::new(PyBackedStr::try_from(s.clone())?))
        } else {
            Source::bytes(text.as_bytes())
        }));
    }
    if let Ok(b) = value.cast_exact::<PyBytes>() {
        let data = b.as_bytes();
        return Ok(Some(if data.len() >= SHARE_MIN {
            Source::Bytes(Arc::new(PyBackedBytes::from(b.clone())))
        } else {
            Source::bytes(data)
        }));
    }
    Ok(None)
}

/// The fast path: a 2-tuple of a `str` name and a small `str` or `bytes` value (added to the
/// form's shared buffers) or an `os.PathLike` (a file part). Returns false when the item needs
/// the general path.
fn push_plain_pair(
    form: &mut Form,
    item: &Bound<'_, PyAny>,
    guess_type: Option<&Bound<'_, PyAny>>,
) -> PyResult<bool> {
    let Ok(pair) = item.cast_exact::<PyTuple>() else {
        return Ok(false);
    };
    if pair.len() != 2 {
        return Ok(false);
    }
    // Borrowed items: no reference count traffic for each of 100,000 fields.
    let name = pair.get_borrowed_item(0)?;
    let Ok(name) = name.cast_exact::<PyString>() else {
        return Ok(false);
    };
    let value = pair.get_borrowed_item(1)?;
    let push = |form: &mut Form, data: &[u8]| -> PyResult<bool> {
        if data.len() >= SHARE_MIN {
            return Ok(false);
        }
        form.push_field(name.to_str()?, data);
        Ok(true)
    };
    if let Ok(text) = value.cast_exact::<PyString>() {
        return push(form, text.to_str()?.as_bytes());
    }
    if let Ok(bytes) = value.cast_exact::<PyBytes>() {
        return push(form, bytes.as_bytes());
    }
    if let Some(guess_type) = guess_type
        && value.hasattr(intern!(value.py(), "__fspath__"))?
    {
        form.push(path_part(name.to_str()?, &value, guess_type)?);
        return Ok(true);
    }
    Ok(false)
}

/// The last two suffixes of a file name (`.tar.gz`, `.csv`), all that `mimetypes.guess_type`
/// looks at; the Python side caches its answer per suffix.
fn type_suffix(filename: &str) -> &str {
    let mut dots = filename.rmatch_indices('.').map(|(at, _)| at);
    match (dots.next(), dots.next()) {
        (Some(_), Some(second)) => &filename[second..],
        (Some(last), None) => &filename[last..],
        _ => "",
    }
}

/// A `(name, os.PathLike)` pair: the file at that path, sent with its base name and the
/// content type `mimetypes` guesses for it (as `MultipartParam.from_file` does).
fn path_part(
    name: &str,
    value: &Bound<'_, PyAny>,
    guess_type: &Bound<'_, PyAny>,
) -> PyResult<Part> {
    let path: PathBuf = value.extract()?;
    let filename = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let content_type: Option<String> = guess_type.call1((type_suffix(&filename),))?.extract()?;
    let mut part = Part::new(name, Source::Path(path)).filename(filename);
    if let Some(content_type) = content_type {
        part = part.content_type(content_type);
    }
    Ok(part)
}

type SpecTuple<'py> = (
    String,
    Option<String>,
    Option<String>,
    Option<Vec<(String, String)>>,
    String,
    Bound<'py, PyAny>,
    Option<u64>,
    Option<u64>,
);

/// A spec tuple: `(name, filename, content_type, headers, kind, data, size, offset)`.
fn spec_part(spec: &Bound<'_, PyAny>) -> PyResult<Part> {
    let spec = spec
        .cast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err("normalize() must return a part spec tuple"))?;
    let (name, filename, content_type, headers, kind, data, size, offset): SpecTuple<'_> =
        spec.extract()?;
    let source = match kind.as_str() {
        "bytes" => value_source(&data)?.ok_or_else(|| {
            PyTypeError::new_err(format!("part {name:?}: value must be str or bytes"))
        })?,
        "path" => {
            let path: PathBuf = data.extract()?;
            Source::Path(path)
        }
        "fd" => {
            let fd: RawFd = data.extract()?;
            Source::File {
                file: Arc::new(dup_fd(fd)?),
                offset: offset.unwrap_or(0),
                len: size,
            }
        }
        "reader" => Source::Reader {
            reader: Box::new(PyReader::new(data.unbind(), offset)),
            len: size,
        },
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown part kind {other:?}"
            )));
        }
    };
    let mut part = Part::new(name, source);
    if let Some(filename) = filename {
        part = part.filename(filename);
    }
    if let Some(content_type) = content_type {
        part = part.content_type(content_type);
    }
    for (key, value) in headers.unwrap_or_default() {
        part = part.header(key, value);
    }
    Ok(part)
}

/// Reads every item of `items` into a form.
pub(crate) fn collect(
    items: &Bound<'_, PyList>,
    normalize: &Bound<'_, PyAny>,
    guess_type: Option<&Bound<'_, PyAny>>,
) -> PyResult<Form> {
    let mut form = Form::with_capacity(items.len());
    for item in items.iter() {
        if push_plain_pair(&mut form, &item, guess_type)? {
            continue;
        }
        // The index is the part's, so the Python layer can map parts back to parameters.
        let spec = normalize.call1((form.len(), item))?;
        if let Ok(specs) = spec.cast::<PyList>() {
            for spec in specs.iter() {
                form.push(spec_part(&spec)?);
            }
        } else {
            form.push(spec_part(&spec)?);
        }
    }
    Ok(form)
}
