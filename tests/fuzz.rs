//! The fuzz targets (`yizhan::fuzzing`) in every test run: each replays its
//! corpus (`fuzz/corpus/<target>`, grown by `scripts/fuzz`) and every input
//! a fuzzer ever crashed on (`fuzz/regressions/<target>`), then a few
//! hundred random inputs of its own. Coverage-guided runs are `scripts/fuzz`.

use std::path::Path;

use proptest::prelude::*;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("query", yizhan::fuzzing::query),
    ("push_body", yizhan::fuzzing::push_body),
    ("geojson_import", yizhan::fuzzing::geojson_import),
    ("opening_hours", yizhan::fuzzing::opening_hours),
    ("codes", yizhan::fuzzing::codes),
];

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("a readable directory").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable"),
            )
        })
        .collect()
}

#[test]
fn every_target_holds_on_its_corpus_and_past_crashes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
        let regressions = inputs(&root.join("regressions").join(name));
        for (path, data) in corpus.iter().chain(&regressions) {
            if let Err(panic) = std::panic::catch_unwind(|| target(data)) {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{name} fails on {path}: {msg}");
            }
        }
    }
}

/// Bytes that look like the target's input more often than pure noise does:
/// a corpus entry with a few bytes overwritten, or arbitrary bytes.
fn mutated(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let corpus: Vec<Vec<u8>> = inputs(&root).into_iter().map(|(_, d)| d).collect();
    let n = corpus.len();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (
            0..n,
            prop::collection::vec((any::<usize>(), any::<u8>()), 0..6)
        )
            .prop_map(move |(i, edits)| {
                let mut d = corpus[i].clone();
                for (at, b) in edits {
                    if !d.is_empty() {
                        let at = at % d.len();
                        d[at] = b;
                    }
                }
                d
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_query_strings_and_path_ids(data in mutated("query")) {
        yizhan::fuzzing::query(&data);
    }

    #[test]
    fn random_push_bodies(data in mutated("push_body")) {
        yizhan::fuzzing::push_body(&data);
    }

    #[test]
    fn random_geojson(data in mutated("geojson_import")) {
        yizhan::fuzzing::geojson_import(&data);
    }

    #[test]
    fn random_opening_hours(data in mutated("opening_hours")) {
        yizhan::fuzzing::opening_hours(&data);
    }

    #[test]
    fn random_codes(data in mutated("codes")) {
        yizhan::fuzzing::codes(&data);
    }
}
