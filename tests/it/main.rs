//! The one integration-test binary: CLI behaviour, render snapshots, the real tools' checks of the
//! generated files, and end-to-end runs against a real Docker engine.

mod cli;
mod ctmpl;
mod ctmpl_exec;
mod deploys;
mod docker_cli;
mod doctor_registry;
mod e2e;
mod e2e_faults;
mod e2e_rolling;
mod e2e_swarm;
mod harness;
mod props;
mod registrator;
mod render_cli;
mod render_snapshots;
mod static_checks;
