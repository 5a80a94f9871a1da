//! The floors are linked as muster's executables are (crates/muster/build.rs): non-PIE.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
