//! Links libratewise.so with the SONAME `libratewise.so.MAJOR`, so that programs linked against
//! it keep loading it across compatible releases; scripts/package.sh installs it as
//! `libratewise.so.MAJOR.MINOR.PATCH` with the two usual symlinks.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_owned());
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "freebsd" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libratewise.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
