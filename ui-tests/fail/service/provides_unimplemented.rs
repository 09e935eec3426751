use backstage::prelude::*;

pub trait Check: Send + Sync {
    fn name(&self) -> String;
}

#[service(provides = dyn Check)]
#[derive(Clone)]
pub struct NotACheck;

fn main() {}
