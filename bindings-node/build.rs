//! Links the addon against Node-API (napi-build).

fn main() {
    napi_build::setup();
}
