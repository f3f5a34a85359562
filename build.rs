//! Rebuilds the crate when the player's files in `web/` change, added files included: rust-embed copies them
//! into the binary at compile time, and a derive macro cannot tell Cargo about files created later.

fn main() {
    println!("cargo:rerun-if-changed=web");
}
