use backstage::prelude::*;

#[backend_module(plugin = "carmen")]
pub struct NoId;

#[backend_module(plugin = "Carmen", id = "my_module", kind = "x")]
pub struct BadIds;

fn main() {}
