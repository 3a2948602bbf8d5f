//! The OpenAPI document served at /openapi.json and docs/asyncapi.yaml pass real
//! validators (@seriousme/openapi-schema-validator, @asyncapi/parser, run by node).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{http_get, TestServer};

fn validate(openapi: &PathBuf, asyncapi: &PathBuf) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js/validate_specs.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(openapi)
        .arg(asyncapi)
        .output()
        .expect("node runs the validators (npm ci --prefix tests/js)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_asyncapi_are_valid() {
    let server = TestServer::start().await;
    let (status, body) = http_get(server.addr, "/openapi.json").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/ws",
        "/ws/{room}",
        "/api/chat-api/ws",
        "/api/chat-api/ws/{room}",
    ] {
        let responses = &doc["paths"][path]["get"]["responses"];
        for code in ["101", "401", "429"] {
            assert!(responses.get(code).is_some(), "{path} documents {code}");
        }
    }
    let dir = std::env::temp_dir().join(format!("chatwire-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let openapi = dir.join("openapi.json");
    std::fs::write(&openapi, &body).expect("write");
    let asyncapi = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/asyncapi.yaml");
    let (ok, report) = validate(&openapi, &asyncapi);
    assert!(ok, "{report}");

    // The validators do reject broken documents.
    let broken_openapi = dir.join("broken.json");
    std::fs::write(
        &broken_openapi,
        r#"{"openapi":"3.1.0","paths":{"/x":{"get":{"responses":7}}}}"#,
    )
    .expect("write");
    let broken_asyncapi = dir.join("broken.yaml");
    std::fs::write(&broken_asyncapi, "asyncapi: 3.0.0\nchannels: 5\n").expect("write");
    let (ok, report) = validate(&broken_openapi, &broken_asyncapi);
    assert!(!ok, "broken documents passed: {report}");
    assert!(
        report.contains("openapi: INVALID") && report.contains("asyncapi:"),
        "{report}"
    );
    std::fs::remove_dir_all(&dir).ok();
    server.stop().await;
}
