use backstage::prelude::*;

#[extension_point(plugin = "carmen")]
#[derive(Clone)]
pub struct Styles {
    names: Vec<String>,
}

fn main() {}
