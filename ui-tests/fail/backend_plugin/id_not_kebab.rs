use backstage::prelude::*;

#[backend_plugin(id = "carmen_items")]
pub struct CarmenItems;

#[backend_plugin(id = "CarmenItems")]
pub struct Camel;

fn main() {}
