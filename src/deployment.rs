//! Finds the Convex deployment the way the Convex CLI does (get-convex/convex-js,
//! `src/cli/lib/deployment.ts` and `utils/utils.ts`): a deploy key `prod:NAME|secret` (also
//! `dev:`) names its deployment, `https://NAME.convex.cloud`; a preview key
//! (`preview:TEAM:PROJECT|…`) or a self-hosted admin key names none. `CONVEX_DEPLOYMENT`
//! (`prod:NAME`, usually in `.env.local`) names one when no key does. A self-hosted backend is
//! `CONVEX_SELF_HOSTED_URL` + `CONVEX_SELF_HOSTED_ADMIN_KEY`. The environment wins over
//! `.env.local`, which wins over `.env` (see [`crate::dotenv::load_all`]).

use serde::Serialize;

use crate::import::ImportError;
use crate::settings::{Secret, redact_url};

/// Where `import` and `verify` send their calls, and where that came from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Deployment {
    /// As given or derived, not yet validated (see [`crate::import::convex_url`]).
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: Option<String>,
    /// e.g. `--convex-url`, `CONVEX_URL`, `derived from CONVEX_DEPLOY_KEY`.
    pub url_from: Option<String>,
    pub key: Option<Secret>,
    pub key_from: Option<String>,
}

fn serialize_redacted_url<S: serde::Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    url.as_deref().map(redact_url).serialize(serializer)
}

/// The deployment named by a deploy key, as the Convex CLI reads it: the part before `|`,
/// without its `prod:`/`dev:` prefix. A key without `|` (self-hosted admin keys) or a preview
/// key (`preview:TEAM:PROJECT|…`) names none.
pub fn name_from_deploy_key(key: &str) -> Option<String> {
    let (prefix, _secret) = key.split_once('|')?;
    let parts: Vec<&str> = prefix.split(':').collect();
    if parts[0] == "preview" && parts.len() == 3 {
        return None;
    }
    plain_name(parts.last()?)
}

/// The deployment named by `CONVEX_DEPLOYMENT` (`prod:NAME`, `dev:NAME` or a bare `NAME`). A
/// local or anonymous deployment has no cloud URL.
pub fn name_from_configured(value: &str) -> Option<String> {
    let mut parts = value.trim().split(':');
    let first = parts.next()?;
    if matches!(first, "local" | "anonymous") || first.starts_with("anonymous-") {
        return None;
    }
    plain_name(value.trim().rsplit(':').next()?)
}

/// A deployment name goes into a host name: only lowercase letters, digits and dashes.
fn plain_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then(|| name.to_owned())
}

pub fn cloud_url(name: &str) -> String {
    format!("https://{name}.convex.cloud")
}

/// The deployment a `https://NAME.convex.cloud` URL names; none for other hosts, and none for
/// a URL with credentials, which [`crate::import::convex_url`] refuses on its own.
fn name_from_url(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url.trim()).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let name = url.host_str()?.strip_suffix(".convex.cloud")?;
    plain_name(name)
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// Resolves the deployment. `flag` is `--convex-url` as clap saw it (clap also fills it from
/// `CONVEX_URL`); `var` reads a non-empty variable; `origin` names the file a variable came
/// from (`.env.local`, `.env`), `None` for the real environment.
pub fn resolve(
    flag: Option<&str>,
    var: &dyn Fn(&str) -> Option<String>,
    origin: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<Deployment, ImportError> {
    let named = |name: &str| match origin(name) {
        Some(file) => format!("{name} (from {file})"),
        None => name.to_owned(),
    };
    let deploy_key = var("CONVEX_DEPLOY_KEY");
    let self_hosted = match (var("CONVEX_SELF_HOSTED_URL"), var("CONVEX_SELF_HOSTED_ADMIN_KEY")) {
        (Some(url), Some(key)) => Some((url, key)),
        (Some(_), None) => {
            return Err(ImportError::SelfHostedIncomplete {
                set: "CONVEX_SELF_HOSTED_URL",
                missing: "CONVEX_SELF_HOSTED_ADMIN_KEY",
            });
        }
        (None, Some(_)) => {
            return Err(ImportError::SelfHostedIncomplete {
                set: "CONVEX_SELF_HOSTED_ADMIN_KEY",
                missing: "CONVEX_SELF_HOSTED_URL",
            });
        }
        (None, None) => None,
    };
    if self_hosted.is_some() && deploy_key.is_some() {
        return Err(ImportError::ConvexConflict {
            reason: format!(
                "both a self-hosted backend (CONVEX_SELF_HOSTED_URL, \
                 CONVEX_SELF_HOSTED_ADMIN_KEY) and {} are set",
                named("CONVEX_DEPLOY_KEY")
            ),
        });
    }
    let env_url = var("CONVEX_URL");
    let explicit = match flag.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) if env_url.as_deref().is_some_and(|e| e.trim() == f) => {
            Some((f.to_owned(), named("CONVEX_URL")))
        }
        Some(f) => Some((f.to_owned(), "--convex-url".to_owned())),
        None => env_url.map(|e| (e, named("CONVEX_URL"))),
    };

    if let Some((url, key)) = self_hosted {
        if let Some((given, from)) = &explicit
            && !same_url(given, &url)
        {
            return Err(ImportError::ConvexConflict {
                reason: format!(
                    "{from} (`{}`) and {} (`{}`) name different deployments",
                    redact_url(given),
                    named("CONVEX_SELF_HOSTED_URL"),
                    redact_url(&url)
                ),
            });
        }
        return Ok(Deployment {
            url: Some(url),
            url_from: Some(format!("{} (self-hosted)", named("CONVEX_SELF_HOSTED_URL"))),
            key: Some(Secret::new(key)),
            key_from: Some(named("CONVEX_SELF_HOSTED_ADMIN_KEY")),
        });
    }

    let key_from = deploy_key.as_ref().map(|_| named("CONVEX_DEPLOY_KEY"));
    let key_name = deploy_key.as_deref().and_then(name_from_deploy_key);
    let (url, url_from) = if let Some((given, from)) = explicit {
        if let (Some(key_name), Some(url_name)) = (&key_name, name_from_url(&given))
            && *key_name != url_name
        {
            return Err(ImportError::ConvexConflict {
                reason: format!(
                    "{from} names deployment `{url_name}` but {} is a key of `{key_name}`",
                    named("CONVEX_DEPLOY_KEY")
                ),
            });
        }
        (Some(given), Some(from))
    } else if deploy_key.is_some() {
        let name = key_name.ok_or(ImportError::KeyNamesNoDeployment)?;
        (Some(cloud_url(&name)), Some(format!("derived from {}", named("CONVEX_DEPLOY_KEY"))))
    } else if let Some(name) = var("CONVEX_DEPLOYMENT").as_deref().and_then(name_from_configured) {
        (Some(cloud_url(&name)), Some(format!("derived from {}", named("CONVEX_DEPLOYMENT"))))
    } else {
        (None, None)
    };
    Ok(Deployment { url, url_from, key: deploy_key.map(Secret::new), key_from })
}

/// The deployment's identity, which keys its import state (`data/deployments/<identity>/`): the
/// name in a `https://NAME.convex.cloud` URL, else the name a cloud deploy key gives
/// (`prod:NAME|…`, `dev:NAME|…`), else the URL itself (a self-hosted backend, a local one), as a file name: scheme dropped,
/// anything but letters, digits, `.`, `_` and `-` made `-`. Two URLs of one deployment with a key
/// that names it are one identity; a deployment replaced at the same URL is told apart by the
/// import's marker in its ledger (see `import::claim_deployment`).
pub fn identity(url: &str, key: Option<&str>) -> String {
    // Only a key of Convex's cloud (`prod:`, `dev:`) names its deployment here: a self-hosted
    // admin key's prefix (`convex-self-hosted|…`) is the same for every backend.
    let cloud_key = key.filter(|k| k.starts_with("prod:") || k.starts_with("dev:"));
    if let Some(name) = name_from_url(url).or_else(|| cloud_key.and_then(name_from_deploy_key)) {
        return name;
    }
    let bare = url.trim().trim_end_matches('/');
    let bare = bare.split_once("://").map_or(bare, |(_, rest)| rest);
    bare.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect()
}

/// [`resolve`] against the process environment and the `.env` files [`crate::dotenv`] read.
pub fn from_env(flag: Option<&str>) -> Result<Deployment, ImportError> {
    resolve(
        flag,
        &|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()),
        &crate::dotenv::origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(
        flag: Option<&str>,
        vars: &[(&str, &str)],
        files: &[(&str, &'static str)],
    ) -> Result<Deployment, ImportError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let files: HashMap<String, &'static str> =
            files.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        resolve(flag, &|n| vars.get(n).cloned(), &|n| files.get(n).copied())
    }

    #[test]
    fn deploy_keys_name_their_deployment_as_the_convex_cli_reads_them() {
        let name = |k| name_from_deploy_key(k);
        assert_eq!(name("prod:happy-animal-123|abc:def").as_deref(), Some("happy-animal-123"));
        assert_eq!(name("dev:tall-forest-1234|abc").as_deref(), Some("tall-forest-1234"));
        assert_eq!(name("happy-animal-123|abc").as_deref(), Some("happy-animal-123"));
        assert_eq!(name("preview:team:project|abc"), None);
        assert_eq!(name("self-hosted-admin-key-without-bar"), None);
        assert_eq!(name("prod:evil.example.com/x|abc"), None);
        assert_eq!(
            name_from_configured("prod:happy-animal-123").as_deref(),
            Some("happy-animal-123")
        );
        assert_eq!(name_from_configured("tall-forest-1234").as_deref(), Some("tall-forest-1234"));
        assert_eq!(name_from_configured("local:local-me-app"), None);
        assert_eq!(name_from_configured("anonymous:anonymous-app"), None);
    }

    #[test]
    fn the_url_comes_from_the_flag_then_convex_url_then_the_key_then_convex_deployment() {
        let key = ("CONVEX_DEPLOY_KEY", "prod:happy-animal-123|s3cr3t");
        let d = run(None, &[key], &[]).unwrap();
        assert_eq!(d.url.as_deref(), Some("https://happy-animal-123.convex.cloud"));
        assert_eq!(d.url_from.as_deref(), Some("derived from CONVEX_DEPLOY_KEY"));

        let dep = ("CONVEX_DEPLOYMENT", "dev:tall-forest-1234");
        let d = run(None, &[dep], &[("CONVEX_DEPLOYMENT", ".env.local")]).unwrap();
        assert_eq!(d.url.as_deref(), Some("https://tall-forest-1234.convex.cloud"));
        assert_eq!(d.url_from.as_deref(), Some("derived from CONVEX_DEPLOYMENT (from .env.local)"));

        // The key wins over CONVEX_DEPLOYMENT, as in the Convex CLI.
        let d = run(None, &[key, dep], &[]).unwrap();
        assert_eq!(d.url.as_deref(), Some("https://happy-animal-123.convex.cloud"));

        let url = ("CONVEX_URL", "https://happy-animal-123.convex.cloud");
        let d = run(Some(url.1), &[key, url], &[]).unwrap();
        assert_eq!(d.url_from.as_deref(), Some("CONVEX_URL"));
        let d = run(Some("http://127.0.0.1:3210"), &[key, url], &[]).unwrap();
        assert_eq!(d.url.as_deref(), Some("http://127.0.0.1:3210"));
        assert_eq!(d.url_from.as_deref(), Some("--convex-url"));

        assert!(run(None, &[], &[]).unwrap().url.is_none());
    }

    #[test]
    fn a_key_that_names_no_deployment_needs_a_url() {
        let key = ("CONVEX_DEPLOY_KEY", "self-hosted-key-s3cr3t");
        assert!(matches!(run(None, &[key], &[]), Err(ImportError::KeyNamesNoDeployment)));
        let d = run(Some("http://127.0.0.1:3210"), &[key], &[]).unwrap();
        assert_eq!(d.url.as_deref(), Some("http://127.0.0.1:3210"));
    }

    #[test]
    fn self_hosted_pairs_are_used_and_conflicts_are_named_without_the_secret() {
        let sh = [
            ("CONVEX_SELF_HOSTED_URL", "http://127.0.0.1:3210"),
            ("CONVEX_SELF_HOSTED_ADMIN_KEY", "convex-self-hosted|s3cr3t"),
        ];
        let d = run(None, &sh, &[]).unwrap();
        assert_eq!(d.url.as_deref(), Some("http://127.0.0.1:3210"));
        assert_eq!(d.key.unwrap().expose(), "convex-self-hosted|s3cr3t");
        assert_eq!(d.url_from.as_deref(), Some("CONVEX_SELF_HOSTED_URL (self-hosted)"));

        let with_key = [sh[0], sh[1], ("CONVEX_DEPLOY_KEY", "prod:happy-animal-123|s3cr3t")];
        let message = run(None, &with_key, &[]).unwrap_err().to_string();
        assert!(message.contains("CONVEX_DEPLOY_KEY") && !message.contains("s3cr3t"), "{message}");

        let other = run(Some("https://other-place-9.convex.cloud"), &sh, &[]).unwrap_err();
        assert!(matches!(other, ImportError::ConvexConflict { .. }));
        let half = run(None, &sh[..1], &[]).unwrap_err().to_string();
        assert!(half.contains("CONVEX_SELF_HOSTED_ADMIN_KEY"), "{half}");
    }

    #[test]
    fn identities_are_the_deployment_name_else_the_url_as_a_file_name() {
        let cloud = "https://happy-animal-123.convex.cloud";
        assert_eq!(identity(cloud, None), "happy-animal-123");
        assert_eq!(
            identity("https://x.example.com", Some("prod:happy-animal-123|s")),
            "happy-animal-123"
        );
        assert_eq!(identity("http://127.0.0.1:3210/", Some("no-name-key")), "127.0.0.1-3210");
        let self_hosted = Some("convex-self-hosted|0123");
        assert_eq!(identity("http://127.0.0.1:3210", self_hosted), "127.0.0.1-3210");
        assert_ne!(
            identity("http://127.0.0.1:3210", None),
            identity("http://127.0.0.1:3211", None)
        );
    }

    #[test]
    fn a_convex_url_of_another_deployment_than_the_keys_is_refused() {
        let vars = [
            ("CONVEX_DEPLOY_KEY", "prod:happy-animal-123|s3cr3t"),
            ("CONVEX_URL", "https://tall-forest-1234.convex.cloud"),
        ];
        let error = run(Some(vars[1].1), &vars, &[("CONVEX_URL", ".env.local")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("CONVEX_URL (from .env.local)"), "{message}");
        assert!(message.contains("tall-forest-1234") && message.contains("happy-animal-123"));
        assert!(!message.contains("s3cr3t"), "{message}");
    }
}
