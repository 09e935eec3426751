//! Every compile-time error the DSL promises, with its reviewed `.stderr`. Bless changed
//! snapshots with `TRYBUILD=overwrite` and review them. The legal surface of each macro (the
//! cases under `pass/`) is compiled and checked by `tests/pass.rs` instead: with only
//! compile-fail cases, trybuild checks (`cargo check`) and builds no binaries.

use std::process::Command;

/// The compiler flags trybuild gives its two cargo runs (the dependencies, then the cases),
/// the same for both. trybuild adds `--diagnostic-width=140` to the second run only, and a
/// change of flags makes cargo check every dependency again: the whole stack twice, half of a
/// fresh clone's time in this test. Set as `CARGO_ENCODED_RUSTFLAGS`, which cargo prefers to
/// the flags trybuild passes, they are one set (`\x1f` separates them).
const RUSTFLAGS: &str =
    "--cfg\x1ftrybuild\x1f--verbose\x1f-A\x1fdead_code\x1f--diagnostic-width=140";

#[test]
fn ui() {
    if std::env::var("CARGO_ENCODED_RUSTFLAGS").as_deref() != Ok(RUSTFLAGS) {
        // This test again, in a process whose environment carries the flags (setting a
        // variable in this one would need `unsafe`).
        let run = Command::new(std::env::current_exe().expect("the test binary's path"))
            .args(["ui", "--exact", "--nocapture", "--test-threads=1"])
            .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS)
            .output()
            .expect("the test binary runs");
        // trybuild's report; the inner harness's own summary would count this test twice.
        let report = String::from_utf8_lossy(&run.stdout);
        for line in report.lines().filter(|l| !l.starts_with("test result:")) {
            eprintln!("{line}");
        }
        eprint!("{}", String::from_utf8_lossy(&run.stderr));
        assert!(
            run.status.success(),
            "a compile-fail case failed; see above"
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("fail/*/*.rs");
}
