//! How Swarm updates each service, read back from the rendered stack.yaml (its `update_config`),
//! so that `apply --dry-run` says what the deployed file will make Swarm do, a local blueprint
//! override included, and not what provision assumes it says.

use serde::Deserialize;

use super::BATCH_VARIABLE;

/// `update_config.order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Swarm's default: the old task stops, then the new one starts.
    #[default]
    StopFirst,
    /// The new task runs (healthy, when it has a health check) before the old one stops.
    StartFirst,
}

/// `update_config.failure_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Swarm's default.
    #[default]
    Pause,
    Rollback,
    Continue,
}

/// One service's `deploy.update_config`, with Swarm's defaults for what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    /// A number, or `${PROVISION_WEB_BATCH:-1}`.
    pub parallelism: Option<serde_yaml::Value>,
    pub order: Order,
    pub failure_action: FailureAction,
    pub delay: Option<String>,
    pub monitor: Option<String>,
}

impl UpdateConfig {
    /// One line: what a changed service goes through.
    fn describe(&self, batch: u32) -> String {
        let at_once = match &self.parallelism {
            None => "1".to_owned(),
            Some(serde_yaml::Value::String(s)) if s.contains(BATCH_VARIABLE) => {
                format!("{batch} (--batch)")
            }
            Some(serde_yaml::Value::Number(n)) if n.as_u64() == Some(0) => "all".to_owned(),
            Some(other) => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        let order = match self.order {
            Order::StartFirst => {
                "updated rolling by Swarm, start-first (each new task runs and is healthy before \
                 an old one stops)"
            }
            Order::StopFirst => {
                "updated by Swarm stop-first (the old task stops before the new one starts: an \
                 interruption of what it serves)"
            }
        };
        let delay = self
            .delay
            .as_deref()
            // `0s`: one batch right after the other.
            .filter(|d| {
                !d.trim_start_matches('0')
                    .trim_start_matches(['.', 's'])
                    .is_empty()
            })
            .map(|d| format!(", {d} apart"))
            .unwrap_or_default();
        let monitor = self.monitor.as_deref().unwrap_or("5s");
        let failure = match self.failure_action {
            FailureAction::Rollback => "Swarm rolls the service back and apply fails",
            FailureAction::Pause => "Swarm pauses the update and apply fails",
            FailureAction::Continue => "Swarm carries on regardless",
        };
        format!("{order}, {at_once} at a time{delay}; a task failing within {monitor}: {failure}")
    }
}

#[derive(Deserialize)]
struct Section {
    #[serde(default)]
    deploy: Deploy,
}

#[derive(Deserialize, Default)]
struct Deploy {
    #[serde(default)]
    update_config: UpdateConfig,
}

/// For `apply --dry-run` on a Swarm: each service of stack.yaml and how Swarm updates it when
/// its tasks change.
pub fn describe(project: &str, stack_yaml: &str, batch: u32) -> anyhow::Result<String> {
    let mut out = format!(
        "plan for {project} on the swarm: `docker stack deploy`; Swarm replaces the tasks of \
         each service whose image or configuration changed, as stack.yaml says:\n"
    );
    for (name, section) in crate::render::compose_services(stack_yaml)? {
        let section: Section = serde_yaml::from_value(section)
            .map_err(|e| anyhow::anyhow!("stack.yaml: service {name}: {e}"))?;
        out.push_str(&format!(
            "  {name:<12} {}\n",
            section.deploy.update_config.describe(batch)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_says_each_services_order_batch_and_failure_action() {
        let stack = "version: \"3.8\"\nservices:\n  web:\n    image: w\n    deploy:\n      update_config:\n        parallelism: ${PROVISION_WEB_BATCH:-1}\n        order: start-first\n        delay: \"2s\"\n        monitor: \"20s\"\n        failure_action: rollback\n  lb:\n    image: l\n    deploy:\n      update_config:\n        order: stop-first\n        failure_action: rollback\n  registrator:\n    image: r\n";
        insta::assert_snapshot!(describe("hits", stack, 2).unwrap(), @r"
        plan for hits on the swarm: `docker stack deploy`; Swarm replaces the tasks of each service whose image or configuration changed, as stack.yaml says:
          web          updated rolling by Swarm, start-first (each new task runs and is healthy before an old one stops), 2 (--batch) at a time, 2s apart; a task failing within 20s: Swarm rolls the service back and apply fails
          lb           updated by Swarm stop-first (the old task stops before the new one starts: an interruption of what it serves), 1 at a time; a task failing within 5s: Swarm rolls the service back and apply fails
          registrator  updated by Swarm stop-first (the old task stops before the new one starts: an interruption of what it serves), 1 at a time; a task failing within 5s: Swarm pauses the update and apply fails
        ");
    }
}
