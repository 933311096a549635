//! Smoke test of `scripts/fuzz.sh` (docs/security.md, "Fuzzing"): one target, `bus_pack`, for a
//! few seconds from its committed seeds. The script must build the fuzz crate (nightly, its own
//! target directory under fuzz/; several minutes the first time), fuzz, find nothing and print
//! the target's summary line. The nightly toolchain and cargo-fuzz come from scripts/setup.sh,
//! which the test command runs first: without them this test fails, saying so.

mod smoke_common;

use std::process::Command;
use std::time::Duration;

use smoke_common::{root, run};

#[test]
fn fuzzing_a_target_prints_its_figures() {
    let tools = Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output();
    assert!(
        tools.as_ref().is_ok_and(|o| o.status.success()),
        "`cargo +nightly fuzz` does not run ({tools:?}): scripts/setup.sh installs the nightly toolchain and cargo-fuzz"
    );
    let mut cmd = Command::new(root().join("scripts/fuzz.sh"));
    cmd.args(["bus_pack", "5"]);
    let done = run(&mut cmd, Duration::from_secs(1_800));
    done.success();
    let line = done.stdout.lines().find(|l| l.starts_with("fuzz: bus_pack: "));
    let line = line.unwrap_or_else(|| panic!("no summary line for bus_pack in:\n{}\n{}", done.stdout, done.stderr));
    // `fuzz: bus_pack: 123456 executions in 6 s (20576 exec/s), corpus 40 inputs, 0 finding(s)`
    let words: Vec<&str> = line.split_whitespace().collect();
    let executions: u64 = words[2].parse().unwrap_or_else(|_| panic!("{line}"));
    assert!(executions > 0, "{line}");
    assert!(line.contains(" exec/s), corpus ") && line.ends_with(", 0 finding(s)"), "{line}");

    // A usage error is refused before anything is built.
    let mut cmd = Command::new(root().join("scripts/fuzz.sh"));
    cmd.args(["no_such_target", "5"]);
    let refused = run(&mut cmd, Duration::from_secs(120));
    assert_eq!(refused.status.code(), Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("no target 'no_such_target'"), "{}", refused.stderr);
}
