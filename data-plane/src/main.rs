//! `data-plane`: not yet serving; the routing-table issue brings it to life.

fn main() -> std::process::ExitCode {
    eprintln!(
        "data-plane {}: not implemented yet (see the routing-table issue)",
        switchboard_data_plane::BUILD_VERSION
    );
    std::process::ExitCode::from(1)
}
