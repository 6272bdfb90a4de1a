//! Receiving a multipart/form-data body (RFC 7578, framed as RFC 2046 says) as it streams in.
//!
//! [`FormParser`] is fed the body in chunks of any size (a delimiter may straddle them) and
//! reports what it finds to a callback: a part's start with its header lines, its data as
//! slices of the chunk given (no copy, but for the few bytes held back at a chunk's end that
//! may begin a delimiter), its end, and the close delimiter. It keeps no more than one part's
//! header lines and those few held-back bytes; the limits on parts and on header bytes, and
//! every departure from the framing, end the body with a [`FormDataError`].
//! [`form_boundary`] finds the boundary in the request's Content-Type.

mod content_type;
mod error;
mod parser;
mod part_headers;

pub use content_type::form_boundary;
pub use error::FormDataError;
pub use parser::{BOUNDARY_MAX, FormEvent, FormLimits, FormParser};
pub use part_headers::PartHeaders;
