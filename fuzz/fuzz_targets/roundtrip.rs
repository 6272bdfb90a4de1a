//! Parts and options in, body out: the body must stream without panicking, its length must
//! equal `content_length()`, seeks must reproduce it, and multer must parse it back into the
//! same parts. The check itself lives in `src/lib.rs` so a stable `cargo test` can run it too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poster_core_fuzz::{Input, check};

fuzz_target!(|input: Input| {
    check(&input);
});
