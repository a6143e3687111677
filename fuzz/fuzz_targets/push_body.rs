#![no_main]
// `scripts/fuzz` runs this; the property lives in `yizhan::fuzzing::push_body`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| yizhan::fuzzing::push_body(data));
