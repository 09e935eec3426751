//! Every compile-time error the DSL promises, with its reviewed `.stderr`, and the legal surface
//! of each macro as pass cases. Bless changed snapshots with `TRYBUILD=overwrite` and review them.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("pass/*/*.rs");
    cases.pass("pass/*.rs");
    cases.compile_fail("fail/*/*.rs");
}
