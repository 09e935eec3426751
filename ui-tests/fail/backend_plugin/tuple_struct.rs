use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen(Logger);

fn main() {}
