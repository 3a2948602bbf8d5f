//! The demo page in headless Chromium (tests/js/e2e_demo.mjs): two users at desktop size
//! pick names, chat, see each other online and typing, get an unread badge, a receipt, a
//! thread reply, a reaction and a search result; a third sees the history and pages
//! back; one at phone size chats without scrolling sideways, and a rate-limited message
//! stays in the input. The page is served from the binary, on the client package built
//! from its current source.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::{http_get, test_config, TestServer};
use tokio::time::timeout;

/// How long the browser run may take.
const BROWSER_RUN_WITHIN: Duration = Duration::from_secs(120);

/// Where the screenshots go: `$DEMO_SCREENSHOT_DIR` (relative to the repository, e.g.
/// `docs` to renew the committed ones), else target/demo-screenshots.
fn screenshot_dir(root: &std::path::Path) -> PathBuf {
    std::env::var_os("DEMO_SCREENSHOT_DIR").map_or_else(
        || root.join("target/demo-screenshots"),
        |dir| root.join(dir),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_chat_on_the_demo_page_at_desktop_and_phone_size() {
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
    let mut limited = test_config();
    limited.rate_messages_per_min = 1;
    let limited = TestServer::start_with(limited).await;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shots = screenshot_dir(&root);
    let failures = root.join("target/demo-screenshots");
    let started = SystemTime::now();
    let run = tokio::process::Command::new("node")
        .arg(root.join("tests/js/e2e_demo.mjs"))
        .arg(server.http_url())
        .arg(limited.http_url())
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .env("E2E_FAILURE_DIR", &failures)
        .kill_on_drop(true)
        .output();
    let out = timeout(BROWSER_RUN_WITHIN, run)
        .await
        .expect("the browser run ended in time")
        .expect("node runs playwright-core");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{report}\n(screenshots of the pages at the failure: {})",
        failures.display()
    );
    for name in ["demo.png", "demo-phone.png"] {
        let fresh = std::fs::metadata(shots.join(name))
            .is_ok_and(|m| m.len() > 1000 && m.modified().is_ok_and(|t| t >= started));
        assert!(fresh, "no fresh {name} in {}: {report}", shots.display());
    }
    limited.stop().await;
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
