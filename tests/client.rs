//! An app team's client, generated from the contract: `openapi-python-client`
//! (the version pinned below) generates a package from `openapi.yaml`; the
//! generator may warn only about media types it cannot model; the package
//! has one enum class per concept; and `tests/client_flow.py` runs an app's
//! whole flow through it against a real `yizhan serve` (the seeded Shandong
//! sites), with no raw HTTP.
//!
//! `openapi-python-client` comes from PyPI (`scripts/test` installs it).
//! Without it the test says so and passes, except under `CI=true`.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The generator's version the contract is checked with (`scripts/test`
/// installs the same).
const GENERATOR: &str = "0.29.1";

/// Media types the generator cannot model: their answers are left out of
/// the client (the metrics, the contract itself, a QR code, a vector tile).
const UNMODELLED: [&str; 4] = [
    "application/openmetrics-text",
    "application/yaml",
    "image/svg+xml",
    "application/vnd.mapbox-vector-tile",
];

fn generator_version() -> Option<String> {
    let out = Command::new("openapi-python-client")
        .arg("--version")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_generated_client_runs_the_app_flow() {
    let Some(version) = generator_version() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openapi-python-client is not installed (pip install openapi-python-client=={GENERATOR})"
        );
        eprintln!("client test skipped: openapi-python-client is not installed");
        return;
    };
    assert!(
        version.ends_with(GENERATOR),
        "openapi-python-client {version}; the test is written for {GENERATOR}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();

    // Generate, as an app team would, from the checked-in document.
    let out = Command::new("openapi-python-client")
        .args(["generate", "--meta", "none", "--output-path"])
        .arg(dir.path().join("yizhan_client"))
        .arg("--path")
        .arg(root.join("openapi.yaml"))
        .output()
        .expect("the generator runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the generator failed:\n{said}");
    // Each warning is a block starting `WARNING parsing …`; every one must
    // be about a media type the generator cannot model.
    let warnings: Vec<&str> = said.split("WARNING").skip(1).collect();
    for w in &warnings {
        assert!(
            UNMODELLED
                .iter()
                .any(|m| w.contains(&format!("Unsupported content_type {m}"))),
            "a generator warning beyond the unmodellable media types:\nWARNING{w}"
        );
    }
    assert!(warnings.len() <= UNMODELLED.len(), "{said}");

    // One enum class per concept: no two enum classes hold the same values.
    let models = dir.path().join("yizhan_client/models");
    let mut by_values: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&models).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(name) = line
                .strip_prefix("class ")
                .and_then(|l| l.strip_suffix("(StrEnum):"))
            else {
                continue;
            };
            let mut values: Vec<String> = lines
                .by_ref()
                .take_while(|l| !l.trim_start().starts_with("def "))
                .filter_map(|l| {
                    let (_, v) = l.split_once(" = ")?;
                    Some(v.trim().trim_matches('"').to_owned())
                })
                .collect();
            values.sort();
            by_values.entry(values).or_default().push(name.to_owned());
        }
    }
    assert!(by_values.len() >= 15, "{by_values:?}");
    for (values, classes) in &by_values {
        assert_eq!(
            classes.len(),
            1,
            "one concept, several enum classes: {classes:?} all hold {values:?}"
        );
    }

    // A server as the README starts it, in a directory of its own.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yizhan"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("YIZHAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let (child, addr, log) = helpers::spawn_serve(cmd, Duration::from_secs(120));
    let _server = Killed(child);

    let flow = Command::new("python3")
        .arg(root.join("tests/client_flow.py"))
        .arg(format!("http://{addr}"))
        .arg(env!("CARGO_BIN_EXE_yizhan"))
        .arg(dir.path())
        .env("PYTHONPATH", dir.path())
        .env_remove("YIZHAN_DATABASE_URL")
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&flow.stdout);
    assert!(
        flow.status.success(),
        "the client flow failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&flow.stderr),
        log.lock().unwrap().join("\n")
    );
    assert!(stdout.contains("client flow: 11 steps passed"), "{stdout}");
}
