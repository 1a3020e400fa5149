//! A valid event (or any JSON) with a personal number embedded anywhere, in any notation,
//! must be rejected as `personal_number` and show the number nowhere; a 13-digit near
//! miss must not be: `gen::EmbeddedEvent::check`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mieruka_fuzz::gen::EmbeddedEvent;

fuzz_target!(|case: EmbeddedEvent| {
    case.check(mieruka_fuzz::ome());
});
