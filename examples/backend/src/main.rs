//! The example backend: links the seed plugin `carmen` and its module `shout`, and serves them
//! on :7007.

// Linking a crate is what installs its plugins and modules.
use carmen_backend as _;
use carmen_module_shout as _;

fn main() {
    backstage::start()
}
