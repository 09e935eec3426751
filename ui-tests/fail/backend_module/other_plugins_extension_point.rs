use backstage::prelude::*;

/// Carmen's extension point.
#[extension_point(plugin = "carmen")]
#[derive(Clone, Default)]
pub struct GreetingStyles;

/// A module of another plugin cannot extend carmen.
#[backend_module(plugin = "catalog", id = "styles")]
pub struct Styles {
    #[inject]
    styles: GreetingStyles,
}

/// Nor can another plugin.
#[backend_plugin(id = "catalog")]
pub struct Catalog {
    #[inject]
    styles: GreetingStyles,
}

fn main() {}
