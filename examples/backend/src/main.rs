//! The example backend: links the seed plugin `carmen` and serves it on :7007.

use carmen_backend as _; // linking the crate is what installs the plugin

fn main() {
    backstage::start()
}
