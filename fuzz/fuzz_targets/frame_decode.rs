//! A request body (first byte odd: NDJSON, even: a JSON array) framed and every event
//! decoded against the Ome plan: `checks::check_frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    mieruka_fuzz::checks::check_frame(&mieruka_fuzz::ome().schema, body, mode & 1 == 1);
});
