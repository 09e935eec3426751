use backstage::prelude::*;

pub struct Connection {
    _url: String,
}

#[backend_plugin(id = "carmen")]
pub struct Carmen {
    connection: Connection,
}

fn main() {}
