//! Links muster's executables as position-dependent (non-PIE) programs.
//!
//! A PIE is loaded at a random address, so the dynamic loader rewrites every pointer in its
//! read-only-after-relocation data (vtables, string tables, `&'static` tables): those pages
//! become private copies in every process — about 200 kB per supervisor, and the supervisor runs
//! once per app. Linked at a fixed address, those pages stay clean and are shared by all
//! supervisors (bench/README.md, "Footprint"). The price is that the executable's own code
//! is not address-randomized (libraries, heap and stacks still are); docs/security.md says so.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
