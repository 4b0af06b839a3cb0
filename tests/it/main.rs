//! The one integration-test binary: CLI behaviour, render snapshots, the real tools' checks of the
//! generated files, and end-to-end runs against a real Docker engine.

// Tests say why they skip, and what an engine run did, on their own output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod build_features;
mod cli;
mod consul_cluster;
mod consul_membership;
mod consul_nameservers;
mod ctmpl;
mod ctmpl_exec;
mod docker_cli;
mod docker_proxy;
mod doctor_registry;
mod e2e;
mod e2e_canary;
mod e2e_faults;
mod e2e_releases;
mod e2e_rolling;
mod e2e_swarm;
mod e2e_swarm_nodes;
mod e2e_tls;
mod entrypoint;
mod figures;
mod init_tty;
mod json_schema;
mod lb_rules;
mod offline;
mod props;
mod registrator;
mod render_cli;
mod render_snapshots;
mod report_page;
mod static_checks;
mod support;
mod web_healthcheck;
