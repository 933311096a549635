//! `report.html` as a user sees it: `tradeflow backtest --out` writes it, headless Chromium
//! (Debian's `chromium`, installed by scripts/setup.sh) renders it, the screenshot shows the
//! price, equity and drawdown drawn across the page, and every statistic the rendered page
//! shows equals `stats.json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");
const WINDOW: (u32, u32) = (1400, 2000);

/// The series' colours in the page's CSS (crates/backtest/src/html/mod.rs); nothing else on
/// the page is drawn in them.
const PRICE: [u8; 3] = [0x2b, 0x6c, 0xb0];
const EQUITY: [u8; 3] = [0x6d, 0x28, 0xd9];
const DRAWDOWN: [u8; 3] = [0xfe, 0xcd, 0xd3];
const ENTRY: [u8; 3] = [0x0e, 0x9f, 0x6e];
const EXIT: [u8; 3] = [0xd9, 0x48, 0x0f];

fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("chromium")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "chromium not found on PATH: this test renders report.html in headless Chromium; \
             run scripts/setup.sh (it installs Debian's chromium package)"
        )
    })
}

/// Chromium headless with a profile of its own (tests run in parallel), killed after 90 s.
fn chromium_run(profile: &Path, args: &[String]) -> Output {
    let mut child = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // Read the pipes on threads so that a large DOM cannot fill one and stall chromium.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut b).map(|_| b)
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut b).map(|_| b)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: out.join().unwrap().unwrap(), stderr: err.join().unwrap().unwrap() }
}

fn write_report(dir: &Path) -> PathBuf {
    let out = Command::new(BIN)
        .args(["backtest", "--strategy", "sma_cross", "--commission", "0.001", "--csv", DEMO, "--out"])
        .arg(dir)
        .env_remove("TRADEFLOW_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "backtest failed:\n{}", String::from_utf8_lossy(&out.stderr));
    dir.join("sma_cross")
}

fn near(px: &[u8], colour: [u8; 3]) -> bool {
    px.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 6)
}

/// Pixels of `colour` in an RGB(A) image, and the leftmost and rightmost column they are in.
fn painted(rgb: &[u8], width: u32, channels: usize, colour: [u8; 3]) -> (usize, u32, u32) {
    let (mut n, mut left, mut right) = (0, u32::MAX, 0);
    for (i, px) in rgb.chunks_exact(channels).enumerate() {
        if near(&px[..3], colour) {
            let x = (i % width as usize) as u32;
            n += 1;
            left = left.min(x);
            right = right.max(x);
        }
    }
    (n, left, right)
}

#[test]
fn report_html_draws_the_charts_and_shows_the_numbers_of_stats_json() {
    let tmp = tempfile::tempdir().unwrap();
    let account = write_report(tmp.path());
    let html_path = account.join("report.html");
    let html = std::fs::read_to_string(&html_path).expect("report.html written beside stats.json");
    for outside in ["<script", "<link", "src=", "url(", "http://", "https://"] {
        assert!(!html.contains(outside), "report.html refers outside itself: {outside}");
    }
    let url = format!("file://{}", html_path.canonicalize().unwrap().display());

    // The screenshot: the charts are drawn, each series across most of the width.
    let shot = tmp.path().join("report.png");
    let out = chromium_run(
        &tmp.path().join("profile-shot"),
        &[format!("--screenshot={}", shot.display()), format!("--window-size={},{}", WINDOW.0, WINDOW.1), url.clone()],
    );
    assert!(out.status.success(), "chromium --screenshot failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&shot).expect("screenshot written");
    assert!(bytes.len() > 50_000, "a {}-byte screenshot is too plain to hold the charts", bytes.len());
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes)).read_info().unwrap();
    let mut pixels = vec![0; decoder.output_buffer_size().unwrap()];
    let info = decoder.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), WINDOW);
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    if let Ok(keep) = std::env::var("TRADEFLOW_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    for (what, colour, at_least) in [
        ("price line", PRICE, 1_000),
        ("equity line", EQUITY, 1_000),
        ("drawdown area", DRAWDOWN, 20_000),
        ("entry markers ▲", ENTRY, 500),
        ("exit markers ▼", EXIT, 500),
    ] {
        let (n, left, right) = painted(&pixels[..info.buffer_size()], info.width, channels, colour);
        assert!(n >= at_least, "{what}: {n} pixels of #{colour:02x?}, expected at least {at_least}");
        let across = right.saturating_sub(left);
        assert!(across > WINDOW.0 / 2, "{what} spans {across} px ({left}..{right}) of a {}-px page", WINDOW.0);
    }

    // The rendered DOM: each statistic shown carries its stats.json value, and shows it rounded.
    let out = chromium_run(&tmp.path().join("profile-dom"), &["--dump-dom".to_string(), url]);
    assert!(out.status.success(), "chromium --dump-dom failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8(out.stdout).unwrap();
    let stats: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(account.join("stats.json")).unwrap()).unwrap();
    let shown = shown_stats(&dom);
    let mut in_table = std::collections::BTreeSet::new();
    for s in &shown {
        let want = stats.get(&s.key).unwrap_or_else(|| panic!("{:?} shown but not in stats.json", s.key));
        let exact: serde_json::Value = serde_json::from_str(&s.value).unwrap();
        assert_eq!(&exact, want, "{}: data-value against stats.json", s.key);
        check_shown(&s.key, &s.text, want);
        if s.in_table {
            in_table.insert(s.key.clone());
        }
    }
    let keys: std::collections::BTreeSet<String> = stats.keys().cloned().collect();
    assert_eq!(in_table, keys, "the statistics table shows every key of stats.json");
    assert_eq!(shown.iter().filter(|s| s.in_table).count(), keys.len(), "each once");
    assert!(shown.len() > keys.len(), "the headline cards show statistics too");

    // The trade list: one row per line of trades.csv.
    let trades = std::fs::read_to_string(account.join("trades.csv")).unwrap().lines().count() - 1;
    let list = &dom[dom.find("class=\"trades\"").expect("trade table")..];
    let body = &list[list.find("<tbody>").unwrap()..list.find("</tbody>").unwrap()];
    assert_eq!(body.matches("<tr>").count(), trades);
    assert_eq!(trades, 545);
}

struct Shown {
    key: String,
    value: String,
    text: String,
    in_table: bool,
}

/// Elements carrying `data-stat`: their key, exact value and text, as Chromium serialised them.
fn shown_stats(dom: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find("data-stat=\"") {
        let open = rest[..at].rfind('<').unwrap();
        let tag_end = at + rest[at..].find('>').unwrap();
        let tag = &rest[open..tag_end];
        let text_end = tag_end + rest[tag_end..].find('<').unwrap();
        out.push(Shown {
            key: unescape(attr(tag, "data-stat")),
            value: unescape(attr(tag, "data-value")),
            text: unescape(&rest[tag_end + 1..text_end]),
            in_table: tag.starts_with("<td"),
        });
        rest = &rest[text_end..];
    }
    out
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let start = tag.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("{name} missing in {tag}")) + name.len() + 3;
    &tag[start..start + tag[start..].find('"').unwrap()]
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// `text` is `want` as a reader should see it: text as is, null as `—`, a number rounded to
/// the places shown.
fn check_shown(key: &str, text: &str, want: &serde_json::Value) {
    let text = text.trim();
    match want {
        serde_json::Value::Null => assert_eq!(text, "—", "{key}"),
        serde_json::Value::String(s) => assert_eq!(text, s, "{key}"),
        serde_json::Value::Number(n) => {
            let exact = n.as_f64().unwrap();
            let digits: String = text.chars().filter(|c| !matches!(c, ',' | '%' | ' ' | '\u{a0}')).collect();
            let shown: f64 = digits.parse().unwrap_or_else(|_| panic!("{key}: {text:?} is not a number"));
            let places = digits.split_once('.').map_or(0, |(_, f)| f.len());
            let half = 0.5 * 10f64.powi(-(places as i32));
            assert!((shown - exact).abs() <= half * (1.0 + 1e-9), "{key}: shown {text:?}, stats.json {exact}");
            assert!(places >= 2 || key.starts_with('#'), "{key}: {text:?} shows too few places");
        }
        other => panic!("{key}: unexpected {other}"),
    }
}
