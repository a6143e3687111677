//! The managers' console in a real browser: runs `tests/console/e2e.py`
//! (Playwright for Python driving Debian's headless Chromium) against the
//! `yizhan` binary this build made. Screenshots are kept in
//! `target/console-screenshots/`.
//!
//! Needs `chromium` (and `fonts-noto-cjk` for legible screenshots) from apt
//! and `playwright` from PyPI; `.ci/run` installs them. Without them the test
//! says so and passes, except under `CI=true`, where it fails.

use std::path::Path;
use std::process::Command;

fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} not found (apt-get install chromium fonts-noto-cjk)"
        ));
    }
    let playwright = Command::new("python3")
        .args(["-c", "import playwright"])
        .status();
    if !playwright.is_ok_and(|s| s.success()) {
        return Some("python3 cannot import playwright (pip install playwright)".into());
    }
    None
}

#[test]
fn the_console_works_end_to_end_in_headless_chromium() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the console's browser test cannot run: {why}"
        );
        eprintln!("console browser test skipped: {why}");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new("python3")
        .arg(Path::new(root).join("tests/console/e2e.py"))
        .env("YIZHAN_BIN", env!("CARGO_BIN_EXE_yizhan"))
        .env(
            "SCREENSHOTS",
            Path::new(root).join("target/console-screenshots"),
        )
        .status()
        .expect("python3 runs");
    assert!(status.success(), "tests/console/e2e.py failed ({status})");
}
