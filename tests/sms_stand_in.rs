//! The SMS stand-in is proven right by a second implementation: the
//! providers' official SDK clients (`alibabacloud-dysmsapi20170525`,
//! `tencentcloud-sdk-python-sms`) pointed at it pass its checks, and a wrong
//! secret, a stale timestamp, a reused nonce or a replay are refused as the
//! providers refuse them (`tests/sms_sdk_check.py`, 60-odd checks).

#[test]
fn the_official_sdk_clients_pass_the_stand_ins_checks() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sms_sdk_check.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .output()
        .expect(
            "python3 runs (pip install alibabacloud-dysmsapi20170525 tencentcloud-sdk-python-sms)",
        );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL "), "{stdout}");
}
