//! Gives libkadmium.so its SONAME, `libkadmium.so.MAJOR`, so programs linked
//! against this version keep loading a compatible one after upgrades
//! (`make install` creates the libkadmium.so.MAJOR and libkadmium.so links).

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_owned());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "freebsd" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkadmium.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
