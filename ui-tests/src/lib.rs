//! Compile-time error tests live in `tests/ui.rs`.
