//! Auth presets (`migrate init --preset NAME`): plan files the binary ships, written into the
//! plan directory over `0001_initial.toml`, and the Convex files they need: the Better Auth
//! component installed locally (`convex/betterAuth/`: its schema with legacy ids, Better Auth's
//! adapter functions, the reads import and verify use), the app's `convex.config.ts` mounting
//! it, and `convex/migrateAuth.ts`, the password verifier that accepts the migrated hashes.
//!
//! A preset's TOML is fixed text (include_str!) with a few holes filled from the catalog: the
//! columns of Supabase's tables no field takes (`drop`), and the tables it does not carry
//! (`skip = true`), since Supabase's `auth` schema grows tables from release to release.
//! What a shape does to each row is `transform::auth`'s; docs/auth-presets.md is the contract.

use crate::catalog::{Catalog, Table, TableName};

/// The presets `migrate init --preset` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    SupabaseToBetterAuth,
    BetterAuth,
    /// The Better Auth component's tables, read from a Convex deployment (`export --from-convex
    /// … --component betterAuth`), into the app's own tables.
    BetterAuthComponentToApp,
}

/// Every preset by its name on the command line.
pub const PRESETS: [(&str, Preset); 3] = [
    ("supabase-to-better-auth", Preset::SupabaseToBetterAuth),
    ("better-auth", Preset::BetterAuth),
    ("better-auth-component-to-app", Preset::BetterAuthComponentToApp),
];

/// The component every preset writes into, as the app mounts it.
pub const COMPONENT: &str = "betterAuth";

/// Why a preset cannot be written for this catalog.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("the preset `{preset}` needs table `{table}`, which the catalog does not hold")]
    MissingTable { preset: &'static str, table: String },
}

impl PresetError {
    pub fn hint(&self) -> String {
        match self {
            PresetError::MissingTable { preset: "supabase-to-better-auth", .. } => {
                "export Supabase's auth schema too: `migrate export --schemas public,auth`".into()
            }
            PresetError::MissingTable { preset: "better-auth-component-to-app", .. } => {
                "export the component from Convex: `migrate export --from-convex URL \
                 --component betterAuth`"
                    .into()
            }
            PresetError::MissingTable { .. } => {
                "export the schema holding Better Auth's tables (`user`, `account`, …)".into()
            }
        }
    }
}

/// A file of the Convex app, relative to the Convex folder.
pub struct ConvexFile {
    pub path: &'static str,
    pub text: &'static str,
    /// Written only when the app has no such file (it is the app's, like schema.ts).
    pub only_if_missing: bool,
}

/// The Better Auth component installed locally, and the app files around it.
pub const CONVEX_FILES: [ConvexFile; 6] = [
    ConvexFile {
        path: "betterAuth/convex.config.ts",
        text: include_str!("better_auth/convex.config.ts"),
        only_if_missing: false,
    },
    ConvexFile {
        path: "betterAuth/schema.ts",
        text: include_str!("better_auth/schema.ts"),
        only_if_missing: false,
    },
    ConvexFile {
        path: "betterAuth/adapter.ts",
        text: include_str!("better_auth/adapter.ts"),
        only_if_missing: false,
    },
    ConvexFile {
        path: "betterAuth/migrate.ts",
        text: include_str!("better_auth/migrate.ts"),
        only_if_missing: false,
    },
    ConvexFile {
        path: "migrateAuth.ts",
        text: include_str!("migrate_auth.ts"),
        only_if_missing: false,
    },
    ConvexFile {
        path: "convex.config.ts",
        text: include_str!("app_convex_config.ts"),
        only_if_missing: true,
    },
];

const SUPABASE: &str = include_str!("supabase_to_better_auth.toml");
const BETTER_AUTH: &str = include_str!("better_auth.toml");

/// The columns of `auth.users` the `supabase_user` shape reads; every other is dropped.
const SUPABASE_USER_COLUMNS: [&str; 10] = [
    "id",
    "email",
    "email_confirmed_at",
    "phone",
    "phone_confirmed_at",
    "raw_user_meta_data",
    "encrypted_password",
    "is_anonymous",
    "created_at",
    "updated_at",
];

/// The columns of `auth.identities` an account takes (`deleted_at` aside, it is not there).
const SUPABASE_IDENTITY_COLUMNS: [&str; 6] =
    ["id", "provider", "provider_id", "user_id", "created_at", "updated_at"];

/// Better Auth's tables on Postgres (as its CLI names them) → the component's model; `None`:
/// skipped (sessions, verifications, Better Auth's own state).
const BETTER_AUTH_TABLES: [(&str, Option<&str>); 11] = [
    ("user", Some("user")),
    ("account", Some("account")),
    ("organization", Some("organization")),
    ("member", Some("member")),
    ("invitation", Some("invitation")),
    ("twoFactor", Some("twoFactor")),
    ("apikey", Some("apikey")),
    ("session", None),
    ("verification", None),
    ("rateLimit", None),
    ("jwks", None),
];

impl Preset {
    pub fn from_name(name: &str) -> Option<Preset> {
        PRESETS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    pub fn name(self) -> &'static str {
        PRESETS.iter().find(|(_, p)| *p == self).map(|(n, _)| *n).expect("every preset is named")
    }

    /// The plan file's name, after `0001_initial.toml`.
    pub fn file_name(self) -> &'static str {
        match self {
            Preset::SupabaseToBetterAuth => "0002_supabase_to_better_auth.toml",
            Preset::BetterAuth => "0002_better_auth.toml",
            Preset::BetterAuthComponentToApp => "0002_better_auth_component_to_app.toml",
        }
    }

    /// The Convex files `init` installs with the preset's plan: the Better Auth component
    /// installed locally, or none when the data leaves the component for the app's tables.
    pub fn convex_files(self) -> &'static [ConvexFile] {
        match self {
            Preset::SupabaseToBetterAuth | Preset::BetterAuth => &CONVEX_FILES,
            Preset::BetterAuthComponentToApp => &[],
        }
    }

    /// The preset's plan file for `catalog`.
    pub fn plan(self, catalog: &Catalog) -> Result<String, PresetError> {
        match self {
            Preset::SupabaseToBetterAuth => supabase_plan(catalog),
            Preset::BetterAuth => better_auth_plan(catalog),
            Preset::BetterAuthComponentToApp => component_to_app_plan(catalog),
        }
    }
}

fn table<'a>(
    catalog: &'a Catalog,
    preset: Preset,
    schema: &str,
    name: &str,
) -> Result<&'a Table, PresetError> {
    let wanted = TableName { schema: schema.into(), name: name.into() };
    catalog.tables.iter().find(|t| t.name == wanted).ok_or_else(|| PresetError::MissingTable {
        preset: preset.name(),
        table: wanted.to_string(),
    })
}

/// A TOML list of strings.
fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> =
        items.iter().map(|i| toml::Value::String(i.clone()).to_string()).collect();
    format!("[{}]", quoted.join(", "))
}

/// The table's columns that are not in `kept`, in catalog order.
fn others(table: &Table, kept: &[&str]) -> Vec<String> {
    table.columns.iter().map(|c| c.name.clone()).filter(|c| !kept.contains(&c.as_str())).collect()
}

/// The TOML key of a table: `tables."schema.name"`.
fn key(name: &TableName) -> String {
    format!("tables.{}", toml::Value::String(name.to_string()))
}

fn supabase_plan(catalog: &Catalog) -> Result<String, PresetError> {
    let preset = Preset::SupabaseToBetterAuth;
    let users = table(catalog, preset, "auth", "users")?;
    let identities = table(catalog, preset, "auth", "identities")?;
    let mut skipped = String::new();
    for t in catalog.tables.iter().filter(|t| t.name.schema == "auth") {
        if t.name.name != "users" && t.name.name != "identities" {
            skipped.push_str(&format!("\n[{}]\nskip = true\n", key(&t.name)));
        }
    }
    if !skipped.is_empty() {
        skipped.insert_str(0, "\n# Supabase's other auth tables: not carried.");
    }
    Ok(SUPABASE
        .replace("@USERS_DROP@", &toml_list(&others(users, &SUPABASE_USER_COLUMNS)))
        .replace("@IDENTITIES_DROP@", &toml_list(&others(identities, &SUPABASE_IDENTITY_COLUMNS)))
        .replace("@SKIPPED@", &skipped))
}

fn better_auth_plan(catalog: &Catalog) -> Result<String, PresetError> {
    let preset = Preset::BetterAuth;
    let find = |name: &str| catalog.tables.iter().find(|t| t.name.name == name);
    let user = find("user")
        .ok_or_else(|| PresetError::MissingTable { preset: preset.name(), table: "user".into() })?;
    let schema = user.name.schema.clone();
    let _ = table(catalog, preset, &schema, "account")?;
    let mut out = String::new();
    for (name, model) in BETTER_AUTH_TABLES {
        let Ok(t) = table(catalog, preset, &schema, name) else { continue };
        let Some(model) = model else {
            out.push_str(&format!("\n[{}]\nskip = true\n", key(&t.name)));
            continue;
        };
        out.push_str(&format!(
            "\n[{}]\ntarget = \"{model}\"\ncomponent = \"{COMPONENT}\"\n",
            key(&t.name)
        ));
        match name {
            "user" => out.push_str("shape = \"better_auth_user\"        # the email lowercased\n"),
            "account" => out
                .push_str("shape = \"better_auth_account\"     # password hash formats counted\n"),
            _ => {}
        }
        // apiKey's owner (`referenceId` since 1.5) has no foreign key: declare it.
        let declared_fk = |column: &str| t.foreign_keys.iter().any(|fk| fk.columns == [column]);
        if name == "apikey"
            && t.columns.iter().any(|c| c.name == "referenceId")
            && !declared_fk("referenceId")
        {
            out.push_str(&format!(
                "references.referenceId = {{ to = {}, orphans = \"keep_legacy\" }}  \
                 # the key's owner: a user (an organization's key keeps its old id)\n",
                toml::Value::String(user.name.to_string())
            ));
        }
    }
    Ok(BETTER_AUTH.replace("@TABLES@", &out))
}

const COMPONENT_TO_APP: &str = include_str!("better_auth_component_to_app.toml");

/// A reference a component's model holds as a string id: (field, parent model, orphans).
type StringReference = (&'static str, &'static str, &'static str);

/// The component's models that move into app tables of the same name, and their references.
const COMPONENT_MODELS: [(&str, &[StringReference]); 8] = [
    ("user", &[]),
    ("account", &[("userId", "user", "fail")]),
    ("session", &[("userId", "user", "fail"), ("activeOrganizationId", "organization", "null")]),
    ("organization", &[]),
    ("member", &[("organizationId", "organization", "fail"), ("userId", "user", "fail")]),
    ("invitation", &[("organizationId", "organization", "fail"), ("inviterId", "user", "fail")]),
    // The key's owner: a user (an organization's key keeps its old id).
    ("apikey", &[("referenceId", "user", "keep_legacy"), ("userId", "user", "keep_legacy")]),
    ("twoFactor", &[("userId", "user", "fail")]),
];

fn component_to_app_plan(catalog: &Catalog) -> Result<String, PresetError> {
    let preset = Preset::BetterAuthComponentToApp;
    let _ = table(catalog, preset, COMPONENT, "user")?;
    let mut out = String::new();
    for t in catalog.tables.iter().filter(|t| t.name.schema == COMPONENT) {
        let Some((model, references)) = COMPONENT_MODELS.iter().find(|(m, _)| *m == t.name.name)
        else {
            out.push_str(&format!("\n[{}]\nskip = true\n", key(&t.name)));
            continue;
        };
        out.push_str(&format!("\n[{}]\ntarget = \"{model}\"\n", key(&t.name)));
        // A component installed by `init --preset` keeps a legacy id of its own: not carried
        // (the component's `_id` is the legacy id now).
        if t.column("legacyId").is_some() {
            out.push_str("drop = [\"legacyId\"]\n");
        }
        // A member is found by its organization and user: the component indexes each alone.
        if *model == "member"
            && t.column("organizationId").is_some()
            && t.column("userId").is_some()
        {
            out.push_str("index = [\"organizationId\", \"userId\"]  # the natural key\n");
        }
        for (field, parent, orphans) in references.iter() {
            if t.column(field).is_none() {
                continue;
            }
            let parent = toml::Value::String(format!("{COMPONENT}.{parent}"));
            out.push_str(&format!(
                "references.{field} = {{ to = {parent}, orphans = \"{orphans}\" }}\n"
            ));
        }
    }
    Ok(COMPONENT_TO_APP.replace("@TABLES@", &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_found_by_name() {
        for (name, preset) in PRESETS {
            assert_eq!(Preset::from_name(name), Some(preset));
            assert_eq!(preset.name(), name);
        }
        assert_eq!(Preset::from_name("supabase"), None);
    }

    #[test]
    fn the_shipped_schema_gives_every_table_a_legacy_id_index() {
        let schema = CONVEX_FILES.iter().find(|f| f.path == "betterAuth/schema.ts").unwrap().text;
        let tables = schema.matches(": defineTable(").count();
        assert_eq!(schema.matches(".index(\"by_legacy_id\", [\"legacyId\"])").count(), tables);
        assert_eq!(schema.matches("legacyId: v.optional(v.string()),").count(), tables);
    }
}
