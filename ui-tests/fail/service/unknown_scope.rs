use backstage::prelude::*;

#[service(scope = "global")]
#[derive(Clone)]
pub struct Audit;

#[service(scop = "root")]
#[derive(Clone)]
pub struct Other;

fn main() {}
