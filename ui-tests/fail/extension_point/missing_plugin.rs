use backstage::prelude::*;

#[extension_point]
#[derive(Clone, Default)]
pub struct Styles;

#[extension_point(plugn = "carmen")]
#[derive(Clone, Default)]
pub struct Other;

fn main() {}
