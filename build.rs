//! The blueprints are embedded with `include_dir!`, which tracks each file it includes but not
//! files added to the directory later: rebuild when anything under blueprints/ changes.

// Cargo reads a build script's stdout: printing is its interface.
#[allow(clippy::print_stdout)]
fn main() {
    println!("cargo:rerun-if-changed=blueprints");
}
