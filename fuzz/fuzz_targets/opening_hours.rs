#![no_main]
// `scripts/fuzz` runs this; the property lives in `yizhan::fuzzing::opening_hours`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| yizhan::fuzzing::opening_hours(data));
