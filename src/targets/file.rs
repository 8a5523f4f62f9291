//! `targets.toml` in the plan dir (docs/targets.md): the deployments a migration goes to, each
//! `[targets.NAME]` with its `url` and `deploy_key_env`, the name of the environment variable
//! holding its deploy key (a key is never written in a file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit_code;

pub const FILE_NAME: &str = "targets.toml";

/// One deployment of the file, its URL checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub deploy_key_env: String,
    /// Row filters of this deployment's tenant, as a plan layer (`[tables."schema.table"]`
    /// with `filter` only), laid over the plan's files; `None`: every row.
    pub filters: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    targets: BTreeMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    url: String,
    deploy_key_env: String,
    /// `[targets.NAME.tables."schema.table"]` → `filter = [...]`, the plan's syntax.
    #[serde(default)]
    tables: BTreeMap<String, TenantTable>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct TenantTable {
    filter: Vec<toml::Table>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("no targets file `{}`", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read the targets file `{}`", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the targets file `{}` is not valid: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("no target `{name}` in `{}` (it names: {})", path.display(), known.join(", "))]
    Unknown { name: String, path: PathBuf, known: Vec<String> },
    #[error("targets `{first}` and `{second}` are the same deployment (`{identity}`)")]
    SameDeployment { first: String, second: String, identity: String },
    #[error("the deploy key of target `{target}`: the variable `{variable}` is not set")]
    MissingKey { target: String, variable: String },
    #[error(
        "target `{target}` has tenant filters and the plan moves files (`[files]`): which Storage objects belong to a tenant is not known, so none is moved rather than every tenant's"
    )]
    TenantFiles { target: String },
}

impl TargetsError {
    pub fn exit_code(&self) -> u8 {
        match self {
            TargetsError::Unreadable { .. } => exit_code::LOCAL_IO,
            _ => exit_code::USAGE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            TargetsError::Missing { .. } => Some(
                "write one `[targets.NAME]` table per deployment with `url` and \
                 `deploy_key_env` (docs/targets.md), or leave --target/--all-targets out to use \
                 CONVEX_URL and CONVEX_DEPLOY_KEY"
                    .into(),
            ),
            TargetsError::Invalid { .. } => Some(
                "each `[targets.NAME]` takes `url` and `deploy_key_env` (docs/targets.md)".into(),
            ),
            TargetsError::MissingKey { variable, .. } => Some(format!(
                "export {variable}=<the deployment's deploy key> (or put it in .env.local); \
                 targets.toml names the variable, never the key"
            )),
            TargetsError::SameDeployment { .. } => {
                Some("a deployment is one target: remove one of them from targets.toml".into())
            }
            TargetsError::TenantFiles { .. } => Some(
                "import that target without `[files]` (a plan directory without it), or move its                  tenant's objects with a plan of its own (docs/targets.md)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Reads `<plan_dir>/targets.toml`.
pub fn load(plan_dir: &Path) -> Result<Vec<Target>, TargetsError> {
    let path = plan_dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TargetsError::Missing { path });
        }
        Err(source) => return Err(TargetsError::Unreadable { path, source }),
    };
    parse(&text, &path)
}

fn parse(text: &str, path: &Path) -> Result<Vec<Target>, TargetsError> {
    let invalid = |reason: String| TargetsError::Invalid { path: path.to_owned(), reason };
    // The error's message and line, never its snippet of the file: a key pasted in by mistake
    // would be printed.
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
        invalid(format!("{at}{}", e.message().trim()))
    })?;
    let mut targets = Vec::with_capacity(file.targets.len());
    for (name, entry) in file.targets {
        let plain = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain {
            return Err(invalid(format!(
                "target `{name}`: a name is letters, digits, `-` and `_` (it names a folder)"
            )));
        }
        let url = crate::import::convex_url(Some(&entry.url))
            .map_err(|e| invalid(format!("target `{name}`: {e}")))?;
        let variable = entry.deploy_key_env.trim();
        if variable.is_empty() || variable.contains(['|', ' ', '=']) {
            return Err(invalid(format!(
                "target `{name}`: `deploy_key_env` is the name of an environment variable \
                 (e.g. CONVEX_DEPLOY_KEY_{}), not a key",
                name.to_ascii_uppercase().replace('-', "_")
            )));
        }
        let filters = match entry.tables.is_empty() {
            true => None,
            false => {
                let layer = BTreeMap::from([("tables", &entry.tables)]);
                Some(
                    toml::to_string(&layer)
                        .map_err(|e| invalid(format!("target `{name}`: {e}")))?,
                )
            }
        };
        targets.push(Target { name, url, deploy_key_env: variable.to_owned(), filters });
    }
    if targets.is_empty() {
        return Err(invalid("it names no `[targets.NAME]`".into()));
    }
    Ok(targets)
}

/// The targets `--target NAME` (in the file's order) or `--all-targets` pick.
pub fn select(
    targets: Vec<Target>,
    names: &[String],
    all: bool,
    path: &Path,
) -> Result<Vec<Target>, TargetsError> {
    if all {
        return Ok(targets);
    }
    if let Some(name) = names.iter().find(|n| !targets.iter().any(|t| &&t.name == n)) {
        return Err(TargetsError::Unknown {
            name: name.clone(),
            path: path.to_owned(),
            known: targets.iter().map(|t| t.name.clone()).collect(),
        });
    }
    Ok(targets.into_iter().filter(|t| names.contains(&t.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<Target>, TargetsError> {
        parse(text, Path::new("migrations/targets.toml"))
    }

    #[test]
    fn targets_are_read_in_name_order_with_their_urls_checked() {
        let targets = parsed(
            "[targets.eu]\nurl = \"https://tall-forest-1.convex.cloud/\"\ndeploy_key_env = \"KEY_EU\"\n\
             [targets.acme-us]\nurl = \"http://127.0.0.1:3210\"\ndeploy_key_env = \"KEY_US\"\n",
        )
        .unwrap();
        assert_eq!(targets[0].name, "acme-us");
        assert_eq!(targets[1].url, "https://tall-forest-1.convex.cloud");
        assert_eq!(targets[1].deploy_key_env, "KEY_EU");
        assert_eq!(targets[1].filters, None);
    }

    #[test]
    fn a_targets_row_filters_become_a_plan_layer() {
        let targets = parsed(
            "[targets.acme]\nurl = \"http://127.0.0.1:1\"\ndeploy_key_env = \"K\"\n\
             [[targets.acme.tables.\"public.users\".filter]]\ncolumn = \"org_id\"\nequals = 1\n",
        )
        .unwrap();
        let layer: toml::Table = toml::from_str(targets[0].filters.as_deref().unwrap()).unwrap();
        let filter = &layer["tables"]["public.users"]["filter"][0];
        assert_eq!(filter["column"].as_str(), Some("org_id"));
        assert_eq!(filter["equals"].as_integer(), Some(1));
        let other = "[targets.acme]\nurl = \"http://127.0.0.1:1\"\ndeploy_key_env = \"K\"\n\
                     [targets.acme.tables.\"public.users\"]\ntarget = \"people\"\n";
        assert!(parsed(other).unwrap_err().to_string().contains("target"), "only filters");
    }

    #[test]
    fn keys_unknown_fields_bad_names_and_urls_are_refused() {
        for (text, expected) in [
            ("[targets.a]\nurl = \"http://x\"\ndeploy_key = \"prod:a|s3cr3t\"\n", "deploy_key"),
            ("[targets.a]\nurl = \"http://x\"\ndeploy_key_env = \"prod:a|s3cr3t\"\n", "not a key"),
            ("[targets.\"a/b\"]\nurl = \"http://x\"\ndeploy_key_env = \"K\"\n", "names a folder"),
            ("[targets.a]\nurl = \"x.convex.cloud\"\ndeploy_key_env = \"K\"\n", "target `a`"),
            ("", "names no"),
        ] {
            let message = parsed(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert!(!message.contains("s3cr3t"), "{message}");
        }
    }

    #[test]
    fn a_missing_file_says_how_to_write_one_or_do_without() {
        let dir = tempfile::tempdir().unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(matches!(error, TargetsError::Missing { .. }), "{error}");
        assert!(error.to_string().contains("targets.toml"), "{error}");
        assert!(error.hint().unwrap().contains("CONVEX_URL"));
        assert_eq!(error.exit_code(), exit_code::USAGE);
    }

    #[test]
    fn selection_keeps_the_files_order_and_names_unknown_targets() {
        let all = parsed(
            "[targets.a]\nurl = \"http://127.0.0.1:1\"\ndeploy_key_env = \"A\"\n\
             [targets.b]\nurl = \"http://127.0.0.1:2\"\ndeploy_key_env = \"B\"\n",
        )
        .unwrap();
        let path = Path::new("targets.toml");
        let picked = select(all.clone(), &["b".into(), "a".into()], false, path).unwrap();
        assert_eq!(picked.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let error = select(all, &["c".into()], false, path).unwrap_err().to_string();
        assert!(error.contains("`c`") && error.contains("a, b"), "{error}");
    }
}
