#![no_main]
// `scripts/fuzz` runs this; the property lives in `yizhan::fuzzing::query`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| yizhan::fuzzing::query(data));
