use backstage::prelude::*;

/// A row type without `#[derive(PortableRow)]`.
#[derive(Debug)]
pub struct Item {
    pub id: i64,
    pub name: String,
}

async fn items(db: &Database) -> Result<Vec<Item>> {
    db.fetch_all("SELECT id, name FROM items", &[]).await
}

fn main() {
    let _ = items;
}
