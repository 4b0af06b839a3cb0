//! The one integration-test binary: CLI behaviour, render snapshots, the real tools' checks of the
//! generated files, and end-to-end runs against a real Docker engine.

mod cli;
mod ctmpl;
mod docker_cli;
mod e2e;
mod e2e_faults;
mod e2e_rolling;
mod e2e_swarm;
mod props;
mod render_cli;
mod render_snapshots;
mod static_checks;
mod support;
