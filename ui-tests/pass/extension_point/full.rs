//! The legal surface of `#[extension_point]`.
use backstage::plugin::Inject;
use backstage::prelude::*;

/// Owned by a plugin, with a default id.
#[extension_point(plugin = "carmen")]
#[derive(Clone, Default)]
pub struct Styles(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

/// Owned by a module of the plugin, with an explicit id; an enum works too.
#[extension_point(plugin = "carmen", module = "shout", id = "carmen.volume")]
#[derive(Clone, Default)]
pub enum Volume {
    #[default]
    Normal,
    Loud,
}

pub(super) fn main() {
    assert!(<Styles as Inject>::ID.ends_with("::Styles"));
    assert_eq!(<Styles as Inject>::OWNER_PLUGIN, Some("carmen"));
    assert_eq!(<Volume as Inject>::ID, "carmen.volume");
    let _ = Volume::Loud;
}
