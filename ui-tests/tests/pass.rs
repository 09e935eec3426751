//! The legal surface of each macro, one module per case: every case compiles in this crate, as
//! in a user's, and its `main` checks what the macros generated. (They were trybuild pass cases,
//! each a binary of its own; here they share one, and trybuild only checks the compile-fail
//! cases, which needs no code generation.)

macro_rules! cases {
    ($($name:ident = $path:literal;)*) => {$(
        #[path = $path]
        #[allow(dead_code, unreachable_pub, missing_docs)]
        mod $name;

        #[test]
        fn $name() {
            $name::main();
        }
    )*};
}

cases! {
    actions = "../pass/actions.rs";
    hygiene = "../pass/hygiene.rs";
    backend_module = "../pass/backend_module/full.rs";
    backend_plugin = "../pass/backend_plugin/full.rs";
    extension_point = "../pass/extension_point/full.rs";
    routes = "../pass/routes/full.rs";
    routes_in_a_submodule = "../pass/routes/in_a_submodule.rs";
    service = "../pass/service/full.rs";
    service_factory = "../pass/service_factory/full.rs";
}
