//! Why a received body was refused.

use std::fmt;

/// A body the parser refused: malformed, or over one of its [`FormLimits`](super::FormLimits).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormDataError {
    /// The boundary given to the parser cannot frame a body.
    Boundary(&'static str),
    /// The body breaks the framing of RFC 2046 / RFC 7578.
    Malformed(&'static str),
    /// The body ended before its close delimiter.
    Truncated,
    /// More parts than the limit.
    TooManyParts(usize),
    /// One part's header lines are longer, in bytes, than the limit.
    HeadersTooLarge(usize),
}

impl FormDataError {
    /// Whether the body was refused for its size (a limit) rather than its form.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            FormDataError::TooManyParts(_) | FormDataError::HeadersTooLarge(_)
        )
    }
}

impl fmt::Display for FormDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormDataError::Boundary(why) => write!(f, "unusable multipart boundary: {why}"),
            FormDataError::Malformed(why) => write!(f, "malformed multipart body: {why}"),
            FormDataError::Truncated => {
                f.write_str("multipart body ended before its closing delimiter")
            }
            FormDataError::TooManyParts(limit) => {
                write!(f, "more than {limit} parts in one request")
            }
            FormDataError::HeadersTooLarge(limit) => {
                write!(f, "a part's headers are over the {limit}-byte limit")
            }
        }
    }
}

impl std::error::Error for FormDataError {}
