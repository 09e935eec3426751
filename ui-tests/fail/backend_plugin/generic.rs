use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen<T> {
    value: T,
}

fn main() {}
