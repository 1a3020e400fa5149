//! The guard alone. First byte even: the rest as text, as a JSON number and as raw bytes
//! (`checks::check_guard_input`); odd: a personal number (or a near miss) written in a
//! random notation inside random text (`gen::TextCase::check`).
#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mieruka_fuzz::gen::TextCase;

fuzz_target!(|data: &[u8]| {
    match data.first() {
        Some(mode) if mode & 1 == 1 => {
            if let Ok(case) = TextCase::arbitrary_take_rest(Unstructured::new(&data[1..])) {
                case.check();
            }
        }
        _ => mieruka_fuzz::checks::check_guard_input(data),
    }
});
