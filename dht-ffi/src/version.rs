//! Library version. The constants become the KAD_VERSION_* macros of the
//! header; a unit test (run by `cargo test`) keeps them equal to Cargo.toml,
//! and kad_version() reports the version of the library actually loaded.

use std::ffi::c_char;

/// Major version of the header (matches the library's Cargo.toml).
pub const KAD_VERSION_MAJOR: u32 = 0;
/// Minor version of the header.
pub const KAD_VERSION_MINOR: u32 = 1;
/// Patch version of the header.
pub const KAD_VERSION_PATCH: u32 = 0;

/// The header's version as one number, MAJOR * 1000000 + MINOR * 1000 +
/// PATCH (0.1.0 is 1000), for `#if KAD_VERSION_NUMBER >= ...` tests.
pub const KAD_VERSION_NUMBER: u32 = 1000;

/// "MAJOR.MINOR.PATCH" of the loaded library (compare with KAD_VERSION_* to
/// detect a header/library mismatch). Static string; never free it.
#[no_mangle]
pub extern "C" fn kad_version() -> *const c_char {
    ffi_panic_boundary! {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast::<c_char>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_constants_match_cargo_toml() {
        let want = format!("{KAD_VERSION_MAJOR}.{KAD_VERSION_MINOR}.{KAD_VERSION_PATCH}");
        assert_eq!(
            want,
            env!("CARGO_PKG_VERSION"),
            "update src/version.rs and regenerate the header"
        );
        assert_eq!(
            KAD_VERSION_NUMBER,
            KAD_VERSION_MAJOR * 1_000_000 + KAD_VERSION_MINOR * 1000 + KAD_VERSION_PATCH
        );
    }
}
