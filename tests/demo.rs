//! The demo page in headless Chromium: two pages chat and see each other's presence;
//! a third sees the history on joining and only the new room after switching.

mod common;

use std::path::PathBuf;

use common::{http_get, test_config, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browser_pages_chat_on_the_demo_page() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        PathBuf::from(&chromium).exists(),
        "Chromium is not installed at {chromium}: apt-get install chromium (.ci/run does it)"
    );
    let server = TestServer::start().await;
    let (status, page) = http_get(server.addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("socket.io.min.js"));
    let (status, _) = http_get(server.addr, "/assets/socket.io.min.js").await;
    assert_eq!(status, 200);

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shot = root.join("target/demo-screenshot.png");
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/js/e2e_demo.mjs"))
        .arg(server.http_url())
        .arg(&shot)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node runs playwright-core");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
        "no screenshot"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_can_be_turned_off() {
    let mut config = test_config();
    config.demo_ui = false;
    let server = TestServer::start_with(config).await;
    assert_eq!(http_get(server.addr, "/").await.0, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_runs_on_the_client_package_built_from_its_current_source() {
    let server = TestServer::start().await;
    let (status, page) = http_get(server.addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("/assets/chatwire-client.mjs"), "{page}");
    let (status, served) = http_get(server.addr, "/assets/chatwire-client.mjs").await;
    assert_eq!(status, 200);
    assert!(served.contains("var ChatwireClient = class"), "{served}");
    let (status, shim) = http_get(server.addr, "/assets/socket.io-client.mjs").await;
    assert_eq!(status, 200);
    assert!(shim.contains("export const io"), "{shim}");
    server.stop().await;

    // The committed bundle is what clients/js/src builds to now.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let package = root.join("clients/js");
    assert!(
        package.join("node_modules/esbuild").exists(),
        "run `npm ci --prefix clients/js` (scripts/test does it)"
    );
    let fresh = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chatwire-client-{}.mjs", std::process::id()));
    let out = tokio::process::Command::new("node")
        .arg(package.join("scripts/build-browser.mjs"))
        .arg(&fresh)
        .output()
        .await
        .expect("node runs esbuild");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = std::fs::read_to_string(&fresh).expect("the fresh bundle");
    let _ = std::fs::remove_file(&fresh);
    let committed =
        std::fs::read_to_string(root.join("static/chatwire-client.mjs")).expect("the bundle");
    assert!(
        built == committed,
        "static/chatwire-client.mjs is not what clients/js/src builds to: run \
         `npm run build:browser --prefix clients/js` and commit it"
    );
}
