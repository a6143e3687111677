#![no_main]
// `scripts/fuzz` runs this; the property lives in `yizhan::fuzzing::codes`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| yizhan::fuzzing::codes(data));
