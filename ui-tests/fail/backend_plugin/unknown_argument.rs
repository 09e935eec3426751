use backstage::prelude::*;

#[backend_plugin(idd = "carmen")]
pub struct Carmen;

fn main() {}
