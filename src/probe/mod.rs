//! Probes of a running stack: HTTP through the load balancer, HAProxy's stats CSV, consul's
//! registry, the HAProxy runtime API (to drain replicas), the wait for convergence, and the
//! checks computed from what was seen.

pub mod checks;
pub mod converge;
pub mod http;
pub mod lbadmin;
pub mod registry;
pub mod stats;
