//! The app's run-time inputs that must never pass through `generated/`: the variables of
//! `web.env_file` and the values of `web.secrets`. Read at apply time (`read`: everything first,
//! so that a missing file or an unset variable stops apply before anything is written), the
//! secrets stored through [`crate::secrets::SecretStore`] (a new value is a new version), and both
//! delivered by a Compose file of their own in the state directory (`deliver`), passed to docker
//! after the rendered one:
//!
//! - secrets as Compose/Swarm secrets, read by the app at `/run/secrets/<NAME>` (the rendered
//!   file sets `<NAME>_FILE` to that path, for apps that follow that convention);
//! - the env file's variables as `environment:`, `$` doubled so that Compose takes them as they
//!   are (the rendered file's values are escaped the same way, see `blueprint::filters::yaml`);
//! - with Compose, web's `org.provision.config` label extended by a digest of all of it, so that
//!   apply's change detection (`deploy::compose::file`) sees a new env file or a new secret
//!   version and rolls web like any other change. The digest covers secret *versions*, which are
//!   random, never a value. Swarm compares service definitions itself.
//!
//! `web.env` values are not secret and are rendered into `generated/` as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::docker::CONFIG_LABEL;
use crate::lb_tls::{self, Certificate};
use crate::secrets::{Deliveries, Flavour, SecretName, SecretStore, SecretValue};
use crate::spec::inputs::RESERVED;
use crate::spec::plan::{PlanSecretSource, PlanWeb};
use crate::spec::stack::Service;
use crate::spec::{self, Plan};
use crate::state::StateDir;

/// The override's file name in the state directory, per target.
fn file_name(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::Compose => "app.compose.yaml",
        Flavour::Swarm => "app.stack.yaml",
    }
}

/// The override of `project` for `flavour`, when the last apply wrote one.
pub fn override_file(project: &str, flavour: Flavour) -> Option<PathBuf> {
    let path = StateDir::of(project).ok()?.join(file_name(flavour));
    path.is_file().then_some(path)
}

/// The inputs as read, not yet stored anywhere.
pub struct AppInputs {
    /// Name the app sees → value.
    secrets: Vec<(String, SecretValue)>,
    /// The env file's variables, in its order.
    env: Vec<(String, String)>,
    /// The lb's HTTPS certificate (`lb.tls`), for the lb service.
    tls: Option<Certificate>,
}

impl std::fmt::Debug for AppInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.secrets.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("AppInputs")
            .field("secrets", &names)
            .field("env", &self.env.len())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The starts of the Swarm secret names of every version of the secrets apply delivers
/// (`SecretStore`'s `<project>_<store name>_<version>`): the app's (store names `web_...`) and
/// the lb's certificate.
pub fn swarm_secret_prefixes(project: &str) -> [String; 2] {
    [
        format!("{project}_web_"),
        format!("{project}_{}_", lb_tls::SECRET),
    ]
}

/// The store's name of the app's secret `name` (`API_KEY` → `web_api_key`).
fn store_name(name: &str) -> anyhow::Result<SecretName> {
    format!("web_{}", name.to_ascii_lowercase())
        .parse()
        .with_context(|| format!("the secret {name} has no name the store accepts"))
}

/// Reads every secret's value and the env file of `plan` (whose spec is at `spec_path`). A
/// problem names the spec's field and line, never a value.
pub fn read(plan: &Plan, spec_path: &Path) -> anyhow::Result<AppInputs> {
    let base = spec::base_dir(spec_path);
    let web = &plan.web;
    let problem = |field: String, message: String| spec::problem_at(spec_path, &field, message);
    let mut secrets = Vec::new();
    let mut store_names = BTreeMap::new();
    for secret in &web.secrets {
        let field = format!("web.secrets.{}", secret.name);
        let stored_as = store_name(&secret.name)?;
        if let Some(other) = store_names.insert(stored_as, secret.name.clone()) {
            return Err(problem(
                field,
                format!("differs from {other} only in case; secrets are stored by lowercase name"),
            )
            .into());
        }
        let value = match &secret.source {
            PlanSecretSource::File(file) => {
                let path = spec::model::SpecFile::try_from(file.clone())
                    .and_then(|checked| spec::inputs::inside(base, &checked))
                    .map_err(|why| problem(field.clone(), why))?;
                let bytes = std::fs::read(&path)
                    .map_err(|err| problem(field.clone(), format!("cannot read {file}: {err}")))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| problem(field.clone(), format!("{file} is not UTF-8 text")))?;
                // Editors end a file with a newline that is not part of the key.
                let text = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(&text)
                    .to_owned();
                if text.is_empty() {
                    return Err(problem(field, format!("{file} is empty")).into());
                }
                SecretValue::from(text)
            }
            PlanSecretSource::Env(variable) => match std::env::var(variable) {
                Ok(text) if !text.is_empty() => SecretValue::from(text),
                Ok(_) => {
                    return Err(problem(field, format!("the variable {variable} is empty")).into())
                }
                Err(std::env::VarError::NotPresent) => {
                    return Err(problem(
                        field,
                        format!(
                            "the variable {variable} is not set in the shell that runs provision"
                        ),
                    )
                    .into())
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(
                        problem(field, format!("the variable {variable} is not UTF-8")).into(),
                    )
                }
            },
        };
        secrets.push((secret.name.clone(), value));
    }
    let env = match &web.env_file {
        None => Vec::new(),
        Some(file) => {
            read_env_file(base, file, web).map_err(|why| problem("web.env_file".to_owned(), why))?
        }
    };
    let tls = match &plan.lb.tls {
        None => None,
        Some(tls) => Some(lb_tls::read(tls, spec_path)?),
    };
    Ok(AppInputs { secrets, env, tls })
}

/// The variables of the dotenv file `file`, with their names checked like `web.env`'s. Messages
/// name a variable or a line, never a value.
fn read_env_file(base: &Path, file: &str, web: &PlanWeb) -> Result<Vec<(String, String)>, String> {
    let checked: spec::model::SpecFile = file.to_owned().try_into()?;
    let path = spec::inputs::inside(base, &checked)?;
    let text =
        std::fs::read_to_string(&path).map_err(|err| format!("cannot read {file}: {err}"))?;
    let mut out: Vec<(String, String)> = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (name, value) = item.map_err(|err| match err {
            dotenvy::Error::LineParse(..) => format!(
                "line {} of {file} is not `NAME=value` (a value with spaces needs quotes: \
                 NAME=\"a b\")",
                first_bad_line(&text)
            ),
            other => format!("cannot read {file}: {}", redact(&other)),
        })?;
        if spec::rules::env_name(&name).is_err() {
            return Err(format!("{file}: `{name}` is not a variable name"));
        }
        let secrets: BTreeMap<_, _> = web.secrets.iter().map(|s| (s.name.as_str(), ())).collect();
        if RESERVED.contains(&name.as_str())
            || name
                .strip_suffix("_FILE")
                .is_some_and(|stem| secrets.contains_key(stem))
        {
            return Err(format!(
                "{file}: `{name}` is set by provision or the container itself; choose another name"
            ));
        }
        if secrets.contains_key(name.as_str()) {
            return Err(format!(
                "{file}: `{name}` is also a secret (web.secrets); give it in one place"
            ));
        }
        if web.env.contains_key(&name) {
            return Err(format!(
                "{file}: `{name}` is also in web.env; give it in one place"
            ));
        }
        out.retain(|(n, _)| n != &name);
        out.push((name, value));
    }
    Ok(out)
}

/// The number of the first line dotenvy cannot read: the shortest leading part of the file it
/// refuses (its error quotes the line's text, which may hold a value, and gives no number).
fn first_bad_line(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    (1..=lines.len())
        .find(|&n| {
            dotenvy::from_read_iter((lines[..n].join("\n") + "\n").as_bytes())
                .any(|item| item.is_err())
        })
        .unwrap_or(lines.len())
}

/// A dotenvy error without the text it quotes (a line of the file may hold a value).
fn redact(err: &dotenvy::Error) -> String {
    match err {
        dotenvy::Error::Io(io) => io.to_string(),
        dotenvy::Error::EnvVar(_) => "a variable it refers to is not valid".to_owned(),
        _ => "it is not a dotenv file".to_owned(),
    }
}

impl AppInputs {
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.env.is_empty() && self.tls.is_none()
    }

    /// One line for apply's notes: names and counts only.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.secrets.iter().map(|(n, _)| n.as_str()).collect();
        format!(
            "app inputs: {} secret{}{}{}, {} variable{} from web.env_file",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            if names.is_empty() { "" } else { " (" },
            if names.is_empty() {
                String::new()
            } else {
                format!("{})", names.join(", "))
            },
            self.env.len(),
            if self.env.len() == 1 { "" } else { "s" },
        )
    }

    /// Stores the secrets and writes the override of `plan` for `flavour`, beside the state of
    /// the project; `rendered` is the rendered Compose or stack file (its web label and version
    /// are carried over). Returns the override's path, None (and no file) without inputs.
    pub fn deliver(
        &self,
        plan: &Plan,
        state: &StateDir,
        flavour: Flavour,
        rendered: &Path,
    ) -> anyhow::Result<Option<PathBuf>> {
        let name = file_name(flavour);
        if self.is_empty() {
            state.remove(name)?;
            return Ok(None);
        }
        let store = SecretStore::new(state.clone());
        let mut deliveries = Deliveries::default();
        for (app_name, value) in &self.secrets {
            let stored = store.put(&store_name(app_name)?, value)?;
            deliveries.add(&plan.web.service, stored, app_name.clone());
        }
        if let Some(cert) = &self.tls {
            deliveries.add(Service::Lb.name(), cert.store(&store)?, lb_tls::TARGET);
        }
        let rendered_text = std::fs::read_to_string(rendered)
            .with_context(|| format!("reading {}", rendered.display()))?;
        let text = override_text(plan, &deliveries, &self.env, flavour, &rendered_text)?;
        state.write(name, text.as_bytes(), 0o600)?;
        Ok(Some(state.join(name)))
    }
}

/// The override's text: `deliveries`' file with web's environment (and, with Compose, its
/// extended config label) added.
fn override_text(
    plan: &Plan,
    deliveries: &Deliveries,
    env: &[(String, String)],
    flavour: Flavour,
    rendered: &str,
) -> anyhow::Result<String> {
    use serde_yaml::{Mapping, Value};
    let web = plan.web.service.as_str();
    let base = if deliveries.is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml::from_str(&deliveries.override_yaml(&plan.project, flavour))
            .context("reading the secrets' override")?
    };
    let mut doc = match base {
        Value::Mapping(m) => m,
        _ => Mapping::new(),
    };
    // The versions label belongs to the stack's own secrets' override (`secrets::stack`), which
    // Compose merges beside this one (the last file's label would win): what changed here is
    // carried by the digest in web's configuration label below instead.
    if let Some(Value::Mapping(services)) = doc.get_mut("services") {
        for (_, service) in services.iter_mut() {
            let Value::Mapping(service) = service else {
                continue;
            };
            if let Some(Value::Mapping(labels)) = service.get_mut("labels") {
                labels.remove(crate::secrets::VERSIONS_LABEL);
                if labels.is_empty() {
                    service.remove("labels");
                }
            }
        }
    }
    let rendered: Value = serde_yaml::from_str(rendered).context("reading the rendered file")?;
    if deliveries.versions_of(web).is_some() || !env.is_empty() {
        web_inputs(&mut doc, plan, deliveries, env, flavour, &rendered)?;
    }
    // A new certificate for the lb does not change the lb's definition (Compose): a running lb
    // gets it in place through HAProxy's runtime API (`deploy::certificate`), and a new
    // container copies it from its secret when it starts.
    if let Some(version) = rendered.get("version") {
        // `docker stack deploy` wants every file of one version.
        doc.insert("version".into(), version.clone());
    }
    let body = serde_yaml::to_string(&Value::Mapping(doc)).context("writing the override")?;
    Ok(format!(
        "# Written by provision for this machine: web's env file and secrets (by path, never by\n\
         # value). Passed to docker after generated/'s file. Do not commit or edit.\n{body}"
    ))
}

/// Web's part of the override: its environment and (Compose) its extended config label.
fn web_inputs(
    doc: &mut serde_yaml::Mapping,
    plan: &Plan,
    deliveries: &Deliveries,
    env: &[(String, String)],
    flavour: Flavour,
    rendered: &serde_yaml::Value,
) -> anyhow::Result<()> {
    use serde_yaml::{Mapping, Value};
    let web = plan.web.service.as_str();
    let rendered_web = &rendered["services"][web];
    let mut digest = Sha256::new();
    digest.update(deliveries.versions_of(web).unwrap_or_default());
    let mut environment = Mapping::new();
    for (name, value) in env {
        digest.update(format!("\0{name}={value}"));
        environment.insert(name.clone().into(), value.replace('$', "$$").into());
    }
    let services = doc
        .entry("services".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let service = services
        .as_mapping_mut()
        .context("services is a mapping")?
        .entry(web.into())
        .or_insert_with(|| Value::Mapping(Mapping::new()))
        .as_mapping_mut()
        .context("web is a mapping")?;
    if !environment.is_empty() {
        service.insert("environment".into(), Value::Mapping(environment));
    }
    if flavour == Flavour::Compose {
        let config = rendered_web["labels"][CONFIG_LABEL]
            .as_str()
            .context("the rendered web service has no config label")?;
        let hex: String = digest
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let labels = service
            .entry("labels".into())
            .or_insert_with(|| Value::Mapping(Mapping::new()))
            .as_mapping_mut()
            .context("labels is a mapping")?;
        labels.insert(CONFIG_LABEL.into(), format!("{config}+{hex}").into());
    }
    Ok(())
}

/// Reads the inputs of `plan` and, unless `dry_run`, delivers them for `flavour`. In a dry run
/// nothing is stored; the inputs are still read, so that a missing one fails the same way.
pub fn prepare(
    plan: &Plan,
    spec_path: &Path,
    flavour: Flavour,
    rendered: &Path,
    dry_run: bool,
) -> anyhow::Result<Option<(AppInputs, Option<PathBuf>)>> {
    let inputs = read(plan, spec_path)?;
    if dry_run {
        return Ok((!inputs.is_empty()).then_some((inputs, None)));
    }
    let state = StateDir::of(&plan.project)?;
    if inputs.is_empty() && !state.join(file_name(flavour)).exists() {
        return Ok(None);
    }
    let written = inputs.deliver(plan, &state, flavour, rendered)?;
    Ok(Some((inputs, written)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(spec: &str, dir: &Path) -> Plan {
        spec::from_text(spec, &dir.join("provision.yaml"), dir).unwrap()
    }

    const RENDERED: &str = "services:\n  web:\n    labels:\n      org.provision.config: \"abc\"\n";

    #[test]
    fn unset_variables_and_missing_files_name_field_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.txt"), "v").unwrap();
        let text = "project: p\nweb:\n  secrets:\n    A: k.txt\n    B: {env: PROVISION_TEST_UNSET_VARIABLE}\n";
        std::fs::write(dir.path().join("provision.yaml"), text).unwrap();
        let p = plan(text, dir.path());
        let err = read(&p, &dir.path().join("provision.yaml")).unwrap_err();
        let said = format!("{err:#}");
        assert!(said.contains(":5:"), "{said}");
        assert!(
            said.contains("web.secrets.B: the variable PROVISION_TEST_UNSET_VARIABLE is not set"),
            "{said}"
        );
        std::fs::remove_file(dir.path().join("k.txt")).unwrap();
        let said = format!(
            "{:#}",
            read(&p, &dir.path().join("provision.yaml")).unwrap_err()
        );
        assert!(
            said.contains(":4:") && said.contains("web.secrets.A: file"),
            "{said}"
        );
        assert!(said.contains("k.txt does not exist"), "{said}");
    }

    #[test]
    fn the_override_carries_env_secrets_and_a_label_that_follows_them() {
        let dir = tempfile::tempdir().unwrap();
        let state_base = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.txt"), "s3cret-value\n").unwrap();
        std::fs::write(
            dir.path().join("app.env"),
            "GREETING='hi $there'\n# c\nMODE=\"x y\"\n",
        )
        .unwrap();
        let text = "project: p\nweb:\n  env_file: app.env\n  secrets:\n    API_KEY: k.txt\n";
        std::fs::write(dir.path().join("provision.yaml"), text).unwrap();
        let rendered = dir.path().join("compose.yaml");
        std::fs::write(&rendered, RENDERED).unwrap();
        let p = plan(text, dir.path());
        let state = StateDir::under(state_base.path(), "p");
        let inputs = read(&p, &dir.path().join("provision.yaml")).unwrap();
        assert!(!format!("{inputs:?}").contains("s3cret"));
        let file = inputs
            .deliver(&p, &state, Flavour::Compose, &rendered)
            .unwrap()
            .unwrap();
        let yaml = std::fs::read_to_string(&file).unwrap();
        assert!(!yaml.contains("s3cret"), "{yaml}");
        let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let web = &doc["services"]["web"];
        assert_eq!(web["environment"]["MODE"].as_str(), Some("x y"));
        assert_eq!(web["environment"]["GREETING"].as_str(), Some("hi $$there"));
        assert_eq!(web["secrets"][0]["target"].as_str(), Some("API_KEY"));
        let label = web["labels"][CONFIG_LABEL].as_str().unwrap().to_owned();
        assert!(label.starts_with("abc+"), "{label}");
        let stored = std::fs::read_to_string(state.join("secrets/web_api_key")).unwrap();
        assert_eq!(stored, "s3cret-value");

        // The same inputs: the same label. A new secret value: another.
        let again = inputs
            .deliver(&p, &state, Flavour::Compose, &rendered)
            .unwrap()
            .unwrap();
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(again).unwrap()).unwrap();
        assert_eq!(
            doc["services"]["web"]["labels"][CONFIG_LABEL].as_str(),
            Some(label.as_str())
        );
        std::fs::write(dir.path().join("k.txt"), "another").unwrap();
        let inputs = read(&p, &dir.path().join("provision.yaml")).unwrap();
        let file = inputs
            .deliver(&p, &state, Flavour::Compose, &rendered)
            .unwrap()
            .unwrap();
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_ne!(
            doc["services"]["web"]["labels"][CONFIG_LABEL].as_str(),
            Some(label.as_str())
        );
    }

    #[test]
    fn the_lb_certificate_goes_to_the_lb_alone_and_a_new_one_is_a_new_secret_version() {
        let dir = tempfile::tempdir().unwrap();
        let state_base = tempfile::tempdir().unwrap();
        let text = "project: p\nlb:\n  tls:\n    self_signed: true\n";
        std::fs::write(dir.path().join("provision.yaml"), text).unwrap();
        let rendered = dir.path().join("compose.yaml");
        std::fs::write(
            &rendered,
            format!(
                "{RENDERED}  lb:\n    labels:\n      org.provision.config: \"cfg\"\n      org.provision.restart-key: \"key\"\n"
            ),
        )
        .unwrap();
        let state = StateDir::under(state_base.path(), "p");
        let deliver = |text: &str| {
            std::fs::write(dir.path().join("provision.yaml"), text).unwrap();
            let p = plan(text, dir.path());
            let inputs = read(&p, &dir.path().join("provision.yaml")).unwrap();
            let file = inputs
                .deliver(&p, &state, Flavour::Compose, &rendered)
                .unwrap()
                .unwrap();
            let yaml = std::fs::read_to_string(file).unwrap();
            assert!(!yaml.contains("PRIVATE KEY"), "{yaml}");
            serde_yaml::from_str::<serde_yaml::Value>(&yaml).unwrap()
        };
        let doc = deliver(text);
        assert!(doc["services"]["web"].is_null(), "web untouched: {doc:?}");
        let lb = &doc["services"]["lb"];
        assert_eq!(lb["secrets"][0]["target"].as_str(), Some("lb.pem"));
        // The lb's definition is untouched: a new certificate reaches a running lb in place
        // (deploy::certificate), not by recreating it.
        assert!(lb["labels"].is_null(), "{lb:?}");
        let name = doc["secrets"][lb_tls::SECRET]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let same = deliver(text);
        assert_eq!(
            same["secrets"][lb_tls::SECRET]["name"].as_str(),
            Some(name.as_str())
        );
        let renamed =
            deliver("project: p\nlb:\n  tls:\n    self_signed: true\n    names: [a.example]\n");
        assert_ne!(
            renamed["secrets"][lb_tls::SECRET]["name"].as_str(),
            Some(name.as_str()),
            "a new certificate is a new secret version"
        );
    }

    #[test]
    fn env_file_problems_never_quote_a_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.env"), "OK=1\nPORT=hidden-value\n").unwrap();
        let text = "project: p\nweb:\n  env_file: app.env\n";
        std::fs::write(dir.path().join("provision.yaml"), text).unwrap();
        let p = plan(text, dir.path());
        let said = format!(
            "{:#}",
            read(&p, &dir.path().join("provision.yaml")).unwrap_err()
        );
        assert!(
            said.contains(":3:") && said.contains("web.env_file: app.env: `PORT`"),
            "{said}"
        );
        assert!(!said.contains("hidden-value"), "{said}");
        std::fs::write(
            dir.path().join("app.env"),
            "OK=1\nB=\"x\"\nC=hidden value\n",
        )
        .unwrap();
        let said = format!(
            "{:#}",
            read(&p, &dir.path().join("provision.yaml")).unwrap_err()
        );
        assert!(said.contains("line 3 of app.env"), "{said}");
        assert!(!said.contains("hidden-value"), "{said}");
    }
}
