//! The example backend, built inside the test package so its tests can run it as a process.

use carmen_backend as _;

fn main() {
    backstage::start()
}
