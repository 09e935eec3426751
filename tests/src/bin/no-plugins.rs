//! A backend binary that links no plugin: start-up must say so and how to fix it.

fn main() {
    backstage::start()
}
