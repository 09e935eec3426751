//! A backend of 10 generated plugins (see `build.rs`), for the benchmark's scale figures.

use backstage::prelude::*;

/// What every `/health` answers.
#[derive(serde::Serialize)]
pub struct Health {
    status: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/plugins_10.rs"));

fn main() {
    backstage::start()
}
