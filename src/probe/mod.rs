//! Probes of a running stack: HTTP through the load balancer, HAProxy's stats CSV, consul's
//! registry, the HAProxy runtime API (to drain replicas), the wait for convergence, and the
//! checks computed from what was seen.

pub mod converge;
pub mod evaluate;
pub mod http;
pub mod lbadmin;
pub mod load;
pub mod measure;
pub mod registry;
pub mod stats;
pub mod tls;
pub mod up_watch;

use crate::spec::Plan;

/// Where a stack answers on this host (published ports from the plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The load balancer's front page.
    pub lb: String,
    /// HAProxy's stats CSV.
    pub stats_csv: String,
    /// HAProxy's stats page, for people (behind a password), and how to log in.
    pub stats_page: String,
    /// consul's HTTP API, when discovery uses consul.
    pub consul: Option<String>,
}

/// The lb's URL at `host`, on either target: HTTPS on `lb.tls.port` when the lb has TLS (plain
/// HTTP may answer only with a redirect), its certificate trusted by this process's probes from
/// then on; HTTP on `lb.port` otherwise. A certificate that cannot be read leaves nothing
/// trusted: the probes then fail on the certificate, which is what verify reports.
pub fn lb_url(plan: &Plan, host: &str) -> String {
    match &plan.lb.tls {
        None => format!("http://{host}:{}/", plan.lb.port),
        Some(tls) => {
            let _ = tls::trust_stack(&plan.project);
            format!("https://{host}:{}/", tls.port)
        }
    }
}

impl Endpoints {
    pub fn of(plan: &Plan) -> Self {
        // 127.0.0.1, not localhost: the admin ports are published on 127.0.0.1 only, and
        // `localhost` may resolve to ::1 first.
        Endpoints {
            lb: lb_url(plan, "127.0.0.1"),
            stats_csv: format!("http://127.0.0.1:{}/stats;csv", plan.lb.stats_port),
            stats_page: format!(
                "http://127.0.0.1:{}/stats (user provision, password: the secret \
                 lb_stats_password, docs/security.md)",
                plan.lb.stats_port
            ),
            consul: plan
                .consul
                .http_port
                .filter(|_| plan.discovery.has_registry())
                .map(|port| format!("http://127.0.0.1:{port}")),
        }
    }
}
