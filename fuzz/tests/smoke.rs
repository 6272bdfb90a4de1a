//! The fuzz target's check on stable Rust, without libFuzzer: random byte strings turned into
//! inputs by `arbitrary`. `POSTER_FUZZ_CASES` sets how many (default 2000), `POSTER_FUZZ_SEED`
//! the seed; files given in `POSTER_FUZZ_REPLAY` (colon-separated: crashes or corpus entries of
//! the fuzz target) are replayed first.

use arbitrary::{Arbitrary, Unstructured};
use std::collections::BTreeMap;

use poster_core_fuzz::{Input, Outcome, check};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_bytes(data: &[u8]) -> Option<Outcome> {
    // What libfuzzer-sys's `fuzz_target!` does with each input.
    Input::arbitrary_take_rest(Unstructured::new(data))
        .ok()
        .map(|input| check(&input))
}

#[test]
fn random_inputs_round_trip() {
    if let Ok(files) = std::env::var("POSTER_FUZZ_REPLAY") {
        for path in files.split(':').filter(|p| !p.is_empty()) {
            let data = std::fs::read(path).expect("replay file");
            run_bytes(&data);
        }
    }
    let cases = env_u64("POSTER_FUZZ_CASES", 2000);
    let mut state = env_u64("POSTER_FUZZ_SEED", 0x5eed_cafe_f00d) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut outcomes = BTreeMap::new();
    for _ in 0..cases {
        let len = (next() % 2048) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        *outcomes.entry(run_bytes(&data)).or_insert(0u64) += 1;
    }
    // Visible with `cargo test -- --nocapture`.
    println!("outcomes of {cases} random inputs: {outcomes:?}");
    if cases >= 1000 {
        let round_trips = outcomes
            .get(&Some(Outcome::RoundTrip))
            .copied()
            .unwrap_or(0);
        assert!(
            round_trips * 10 >= cases,
            "too few inputs got through: {outcomes:?}"
        );
    }
}
