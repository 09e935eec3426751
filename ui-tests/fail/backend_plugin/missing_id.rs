use backstage::prelude::*;

#[backend_plugin]
pub struct Carmen;

fn main() {}
