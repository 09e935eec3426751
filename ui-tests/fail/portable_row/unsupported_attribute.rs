use backstage::prelude::*;

#[derive(PortableRow)]
pub struct Item {
    pub id: i64,
    #[sqlx(default)]
    pub name: String,
}

#[derive(PortableRow)]
pub enum NotAStruct {
    One,
}

fn main() {}
