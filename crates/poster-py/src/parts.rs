//! Turning Python form items into encoder parts.
//!
//! Plain `(str, str | bytes)` pairs, file paths and `MultipartParam`s without a callback are
//! read here directly, so a form of 100,000 fields costs no Python call per field; anything
//! else goes through the Python layer's `normalize(index, item)`, which returns a
//! `MultipartParam` or a list of them.

use std::path::PathBuf;
use std::sync::Arc;

use poster_core::{Form, Part, Source};
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::param::ParamPy;

/// Values at least this large are shared with Python rather than copied.
pub(crate) const SHARE_MIN: usize = 64 * 1024;

pub(crate) fn value_source(value: &Bound<'_, PyAny>) -> PyResult<Option<Source>> {
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
/// form's shared buffers), an `os.PathLike` or a `(filename, os.PathLike, content_type)` tuple
/// (a file part). Returns false when the item needs the general path.
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
    let Some(guess_type) = guess_type else {
        return Ok(false);
    };
    if value.hasattr(intern!(value.py(), "__fspath__"))? {
        form.push(path_part(name.to_str()?, &value, guess_type)?);
        return Ok(true);
    }
    if let Ok(file) = value.cast_exact::<PyTuple>()
        && let Some(part) = typed_path_part(name.to_str()?, &file)?
    {
        form.push(part);
        return Ok(true);
    }
    Ok(false)
}

/// A requests-style `(filename, os.PathLike, content_type)` value with both texts given: the
/// file at that path under that filename and type, as the Python layer builds it, without a
/// `MultipartParam` per file and without asking `mimetypes` (whose first use reads the
/// system's type tables: ~4.5 ms). `None` for anything less plain: a guessed type, extra
/// headers, empty texts, or text with lone surrogates (which the Python layer cleans).
fn typed_path_part(name: &str, file: &Bound<'_, PyTuple>) -> PyResult<Option<Part>> {
    if file.len() != 3 {
        return Ok(None);
    }
    let (filename, data, content_type) = (
        file.get_borrowed_item(0)?,
        file.get_borrowed_item(1)?,
        file.get_borrowed_item(2)?,
    );
    let (Ok(filename), Ok(content_type)) = (
        filename.cast_exact::<PyString>(),
        content_type.cast_exact::<PyString>(),
    ) else {
        return Ok(None);
    };
    let (Ok(filename), Ok(content_type)) = (filename.to_str(), content_type.to_str()) else {
        return Ok(None);
    };
    if filename.is_empty()
        || content_type.is_empty()
        || !data.hasattr(intern!(data.py(), "__fspath__"))?
    {
        return Ok(None);
    }
    let path: PathBuf = data.extract()?;
    Ok(Some(
        Part::new(name, Source::Path(path))
            .filename(filename)
            .content_type(content_type),
    ))
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

fn push_param(form: &mut Form, spec: &Bound<'_, PyAny>) -> PyResult<()> {
    let param = spec.cast::<ParamPy>().map_err(|_| {
        PyTypeError::new_err("normalize() must return a MultipartParam or a list of them")
    })?;
    param.borrow().push_into(spec.py(), form)
}

/// Reads every item of `items` into a form.
pub(crate) fn collect(
    items: &Bound<'_, PyList>,
    normalize: &Bound<'_, PyAny>,
    guess_type: Option<&Bound<'_, PyAny>>,
) -> PyResult<Form> {
    let py = items.py();
    let mut form = Form::with_capacity(items.len());
    for item in items.iter() {
        if push_plain_pair(&mut form, &item, guess_type)? {
            continue;
        }
        // A parameter with a callback goes through `normalize`, which records its index.
        if let Ok(param) = item.cast::<ParamPy>() {
            let param = param.borrow();
            if !param.has_callback() {
                param.push_into(py, &mut form)?;
                continue;
            }
        }
        // The index is the part's, so the Python layer can map parts back to parameters.
        let spec = normalize.call1((form.len(), item))?;
        if let Ok(specs) = spec.cast::<PyList>() {
            for spec in specs.iter() {
                push_param(&mut form, &spec)?;
            }
        } else {
            push_param(&mut form, &spec)?;
        }
    }
    Ok(form)
}
