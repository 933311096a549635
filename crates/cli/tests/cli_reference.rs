//! docs/cli.md's reference is what the binary's `--help` says: `scripts/cli-reference.py
//! --check` (the script's smoke test too) fails naming the first stale line, so a flag cannot
//! change without its documentation.

mod smoke_common;

use std::process::Command;

use smoke_common::{BIN, root};

#[test]
fn the_cli_reference_is_current() {
    let out = Command::new("python3")
        .arg(root().join("scripts/cli-reference.py"))
        .args(["--check", BIN])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}\n(regenerate it: cargo build -p tradeflow && scripts/cli-reference.py)",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
