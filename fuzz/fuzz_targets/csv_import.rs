//! A CSV file (first byte: encoding path and mapping variant) imported with the konbini
//! mapping fixture, every row decoded: `checks::check_csv_input`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mieruka_fuzz::checks::check_csv_input(
        &mieruka_fuzz::ome().schema,
        mieruka_fuzz::konbini_mappings(),
        data,
    );
});
