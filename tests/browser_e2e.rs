//! The player end to end, judged from the screen: Chromium headed on a virtual X display (Xvfb), the display
//! read back with ffmpeg (tests/browser/player.e2e.mjs, playwright-core from npm). Outside CI it skips, saying
//! why, when Node, the npm packages, Chromium, Xvfb or ffmpeg are missing; in CI (which installs them) a
//! missing piece fails it.
//!
//! A test binary of its own, unlike the rest (tests/it/): cargo runs test binaries one after another, so playback
//! timing is measured with no other test competing for the cores.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

fn missing_piece(root: &Path) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    if Command::new("node").arg("--version").output().is_err() {
        return Some("Node.js is not installed".to_string());
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        return Some(
            "playwright-core is not installed (run `npm ci` in tests/browser)".to_string(),
        );
    }
    for (program, package) in [("Xvfb", "xvfb"), ("ffmpeg", "ffmpeg")] {
        if Command::new(program).arg("-help").output().is_err() {
            return Some(format!(
                "{program} is not installed (apt-get install {package})"
            ));
        }
    }
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    None
}

#[test]
fn the_screen_shows_each_video_frame_with_its_own_overlay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(missing) = missing_piece(root) {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test must run in CI: {missing}");
        }
        eprintln!("skipping the browser test: {missing}");
        return;
    }
    let output = Command::new("node")
        .arg(root.join("tests/browser/player.e2e.mjs"))
        .env("MESHREEL_BIN", env!("CARGO_BIN_EXE_meshreel"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
}
