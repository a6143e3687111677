//! The WeChat stand-in (`tests/wechat_service.py`: code2Session,
//! stable_token and the classic token, getuserphonenumber, subscribe/send) is
//! proven right by a second implementation: the `wechatpy` client library
//! pointed at it gets WeChat's answers and errcodes, refreshes its token on
//! 40001/42001 as it does against WeChat, spends one one-time consent per
//! send, and sees every subscribe field type accepted and refused per WeChat's
//! table (`tests/wechat_sdk_check.py`, 140-odd checks).

#[test]
fn the_wechatpy_client_passes_the_stand_ins_checks() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wechat_sdk_check.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .output()
        .expect("python3 runs (pip install wechatpy)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL "), "{stdout}");
}
