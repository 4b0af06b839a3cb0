//! Probes of a running stack: HTTP through the load balancer, HAProxy stats, the consul registry.
