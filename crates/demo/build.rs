//! Lets binaries linked against a prebuilt `libduckdb` find it at run time: when
//! `DUCKDB_LIB_DIR` is set, that directory goes into the binaries' rpath.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Some(dir) = std::env::var_os("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.to_string_lossy());
    }
}
