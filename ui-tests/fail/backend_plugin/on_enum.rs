use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub enum Carmen {
    A,
}

fn main() {}
