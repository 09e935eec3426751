//! Every compile-time error the DSL promises, with its reviewed `.stderr`. Bless changed
//! snapshots with `TRYBUILD=overwrite` and review them. The legal surface of each macro (the
//! cases under `pass/`) is compiled and checked by `tests/pass.rs` instead: with only
//! compile-fail cases, trybuild checks (`cargo check`) and builds no binaries.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("fail/*/*.rs");
}
