//! The checked-in `openapi.yaml` is generated from the code; this fails when it is stale.
//! Regenerate with `cargo run -- openapi > openapi.yaml`.

#[test]
fn openapi_yaml_is_current() {
    let generated = yizhan::http::openapi_yaml();
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml exists");
    assert!(
        generated == checked_in,
        "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml`"
    );
    for path in [
        "/v1/sites/nearby",
        "/v1/sites/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            generated.contains(&format!("  {path}:")),
            "{path} missing from the contract"
        );
    }
}
