#![no_main]
// `scripts/fuzz` runs this; the property lives in `yizhan::fuzzing::geojson_import`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| yizhan::fuzzing::geojson_import(data));
