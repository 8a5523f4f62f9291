//! References the database does not declare on a table itself.
//!
//! - Declared in the plan: `references.COLUMN = { to = "schema.table" }` (with `columns = [...]`
//!   for a parent whose legacy id has several columns), for relations an application keeps
//!   without a foreign key. Each is checked against the catalog and becomes a [`ForeignKey`]
//!   of the parent's legacy id columns, which resolution then treats like the database's own:
//!   the same field naming, orphan policy, transform check, import and verify.
//! - Declared on some partitions of a partitioned table but not all (export records them in
//!   [`PartitionKeys`](crate::catalog::PartitionKeys); the ones every partition declares are
//!   already attached to the table): a warning each, saying how to declare it in the plan.

use super::*;
use crate::plan::file::quote_string;

/// A `references` entry with `to`, checked as far as the catalog alone allows (the parent's
/// fate and legacy id are decided later).
#[derive(Debug)]
pub(super) struct Declared<'a> {
    pub key: &'a str,
    pub entry: &'a ReferenceEntry,
    pub to: &'a At<String>,
    pub parent: &'a Table,
    /// The referencing columns, in the order of the parent's legacy id columns.
    pub columns: Vec<String>,
}

/// What a `references` entry with `to` turns out to be.
pub(super) enum Checked<'a> {
    /// It names a foreign key the database declares, to the same table: `to` only confirms it.
    Database(&'a ForeignKey),
    Declared(Declared<'a>),
}

/// The `references.<key>` entry with `to` of `table`: its columns exist and appear once, its
/// parent exists, and none of its columns is already a foreign key to another table.
pub(super) fn check<'a>(
    table: &'a Table,
    key: &'a str,
    entry: &'a ReferenceEntry,
    to: &'a At<String>,
    tables: &HashMap<String, &'a Table>,
    catalog: &Catalog,
) -> Result<Checked<'a>, PlanError> {
    let Some(&parent) = tables.get(&to.value) else {
        return Err(unknown_table(catalog, &to.at, &to.path, &to.value));
    };
    let conflict = |reason: String, many: bool| {
        PlanError::from(PlanErrorKind::Invalid {
            at: to.at.clone(),
            path: entry.path.clone(),
            reason,
            hint: Some(format!(
                "the database's foreign key decides where {}: remove `to` (and `columns`) \
                 to set this reference's `field` or `orphans`, or drop the constraint in the \
                 source",
                if many { "they point" } else { "it points" }
            )),
        })
    };
    let same_columns = |fk: &ForeignKey, names: &[String]| {
        fk.columns.len() == names.len() && fk.columns.iter().all(|c| names.contains(c))
    };
    let explicit: Option<Vec<String>> =
        entry.columns.as_ref().map(|list| list.value.iter().map(|c| c.value.clone()).collect());
    // A constraint's name: the database's foreign key, which `to` may only confirm.
    if let Some(fk) = table.foreign_keys.iter().find(|fk| fk.name == key) {
        let columns_agree = explicit.as_ref().is_none_or(|names| same_columns(fk, names));
        if fk.references == parent.name && columns_agree {
            return Ok(Checked::Database(fk));
        }
        let reason = format!(
            "`{key}` names the database's foreign key to `{}`{}",
            fk.references,
            if fk.references == parent.name {
                format!(" on {}, not the `columns` listed", backticked(&fk.columns))
            } else {
                format!(", not `{}`", parent.name)
            }
        );
        return Err(conflict(reason, fk.columns.len() > 1));
    }
    let columns: Vec<At<String>> = match &entry.columns {
        Some(list) if list.value.is_empty() => {
            return Err(PlanError::from(PlanErrorKind::Invalid {
                at: list.at.clone(),
                path: list.path.clone(),
                reason: "the list is empty".into(),
                hint: Some(format!(
                    "list the columns of `{}` that hold the parent's legacy id",
                    table.name
                )),
            }));
        }
        Some(list) => list.value.clone(),
        None => key
            .split(',')
            .map(|c| At {
                value: c.trim().to_owned(),
                at: entry.at.clone(),
                path: entry.path.clone(),
            })
            .collect(),
    };
    for (i, column) in columns.iter().enumerate() {
        if table.column(&column.value).is_none() {
            return Err(PlanError::from(PlanErrorKind::UnknownColumn {
                at: column.at.clone(),
                path: column.path.clone(),
                table: table.name.to_string(),
                column: column.value.clone(),
                suggestion: suggest(&column.value, table.columns.iter().map(|c| c.name.as_str())),
            }));
        }
        if columns[..i].iter().any(|earlier| earlier.value == column.value) {
            return Err(PlanError::from(PlanErrorKind::Invalid {
                at: column.at.clone(),
                path: column.path.clone(),
                reason: format!("column `{}` is listed twice", column.value),
                hint: None,
            }));
        }
    }
    let names: Vec<String> = columns.into_iter().map(|c| c.value).collect();

    // The database's own foreign keys decide where their columns point.
    for fk in &table.foreign_keys {
        let shared: Vec<String> =
            fk.columns.iter().filter(|c| names.contains(c)).cloned().collect();
        if shared.is_empty() {
            continue;
        }
        if fk.references == parent.name && same_columns(fk, &names) {
            return Ok(Checked::Database(fk));
        }
        let what = match shared.as_slice() {
            [one] => format!("column {} is", backticked_columns(table, std::slice::from_ref(one))),
            several => format!("columns {} are", backticked_columns(table, several)),
        };
        let reason = format!(
            "{what} already in the database's foreign key `{}` to `{}`",
            fk.name, fk.references
        );
        return Err(conflict(reason, shared.len() > 1));
    }
    Ok(Checked::Declared(Declared { key, entry, to, parent, columns: names }))
}

/// Why the parent of a declared reference cannot be referenced; `None` when it is migrated.
pub(super) enum ParentFate {
    Migrated { legacy_id: Vec<String> },
    Skipped,
    Merged { into: TableName },
}

/// The declared references of `table` as foreign keys of the parent's legacy id columns, once
/// the parent's fate and legacy id are known: the parent is migrated, the columns match its
/// legacy id in number and type, and no two declared references share a column.
pub(super) fn foreign_keys(
    table: &Table,
    declared: &[Declared<'_>],
    fate: impl Fn(&TableName) -> ParentFate,
) -> Result<Vec<ForeignKey>, PlanError> {
    let mut keys: Vec<ForeignKey> = Vec::with_capacity(declared.len());
    for (i, d) in declared.iter().enumerate() {
        let invalid = |reason: String, hint: String| {
            PlanError::from(PlanErrorKind::Invalid {
                at: d.to.at.clone(),
                path: d.entry.path.clone(),
                reason,
                hint: Some(hint),
            })
        };
        let legacy_id = match fate(&d.parent.name) {
            ParentFate::Migrated { legacy_id } => legacy_id,
            ParentFate::Skipped => {
                return Err(invalid(
                    format!("`to` names `{}`, which is skipped", d.parent.name),
                    format!(
                        "migrate `{}`, or remove this reference: its columns then stay plain \
                         fields",
                        d.parent.name
                    ),
                ));
            }
            ParentFate::Merged { into } => {
                return Err(invalid(
                    format!(
                        "`to` names `{}`, which is merged into `{into}`: its rows are no \
                         documents of their own",
                        d.parent.name
                    ),
                    "remove this reference, or keep the parent a table of its own".into(),
                ));
            }
        };
        if d.columns.len() != legacy_id.len() {
            let s = |n: usize| if n == 1 { "" } else { "s" };
            return Err(invalid(
                format!(
                    "`{}` is found by its legacy id ({}), {} column{}; the reference has {} ({})",
                    d.parent.name,
                    backticked(&legacy_id),
                    legacy_id.len(),
                    s(legacy_id.len()),
                    d.columns.len(),
                    backticked(&d.columns),
                ),
                format!(
                    "list one column of `{}` per legacy id column, in that order: `columns = \
                     [{}]`",
                    table.name,
                    legacy_id.iter().map(|_| "\"…\"").collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        for (column, key_column) in d.columns.iter().zip(&legacy_id) {
            let child = table.column(column).expect("declared columns are checked");
            let Some(parent) = d.parent.column(key_column) else { continue };
            if !comparable(child, parent) {
                return Err(invalid(
                    format!(
                        "column `{}` is {} and the legacy id column `{}` of `{}` is {}: \
                         Postgres would not compare them, so no row would find its parent",
                        column_path(table, column),
                        type_text(child),
                        key_column,
                        d.parent.name,
                        type_text(parent)
                    ),
                    "a reference holds the parent's key: declare it on a column of the same \
                     type (or one Postgres compares with it, such as integer and bigint)"
                        .into(),
                ));
            }
        }
        if let Some(other) =
            declared[..i].iter().find(|other| other.columns.iter().any(|c| d.columns.contains(c)))
        {
            let shared: Vec<String> =
                d.columns.iter().filter(|c| other.columns.contains(c)).cloned().collect();
            return Err(invalid(
                format!(
                    "{} also in `references.{}`",
                    backticked_columns(table, &shared),
                    quote_key(other.key)
                ),
                "a column holds one reference: keep one of the two entries".into(),
            ));
        }
        keys.push(ForeignKey {
            name: d.key.to_owned(),
            columns: d.columns.clone(),
            references: d.parent.name.clone(),
            referenced_columns: legacy_id,
        });
    }
    Ok(keys)
}

fn type_text(column: &Column) -> String {
    format!("`{}`", column.sql_type)
}

/// Whether Postgres compares a value of `child` with one of `parent` (a foreign key between them
/// could exist), in a way `transform::keys` reproduces.
fn comparable(child: &Column, parent: &Column) -> bool {
    if child.array || parent.array {
        return child.array && parent.array && child.ty == parent.ty;
    }
    let integer = |ty: &PgType| matches!(ty, PgType::Int2 | PgType::Int4 | PgType::Int8);
    let text = |ty: &PgType| matches!(ty, PgType::Text | PgType::Varchar | PgType::Bpchar);
    let float = |ty: &PgType| matches!(ty, PgType::Float4 | PgType::Float8);
    match (&parent.ty, &child.ty) {
        (p, c) if integer(p) && integer(c) => true,
        (PgType::Numeric, c) => integer(c) || *c == PgType::Numeric,
        (p, c) if float(p) => float(c),
        (p, c) if text(p) => text(c) || (*c == PgType::Citext && *p != PgType::Bpchar),
        (p, c) => p == c,
    }
}

/// The warning for each foreign key only some partitions of `table` declare, unless the plan
/// declares a reference on its columns (`declared`).
pub(super) fn partition_warnings(table: &Table, declared: &[Declared<'_>]) -> Vec<String> {
    let Some(keys) = &table.partition_keys else { return Vec::new() };
    keys.partial
        .iter()
        .filter(|p| !declared.iter().any(|d| p.columns.iter().any(|c| d.columns.contains(c))))
        .map(|p| {
            const SHOWN: usize = 3;
            let names = |list: &[TableName]| {
                let mut text = list
                    .iter()
                    .take(SHOWN)
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if list.len() > SHOWN {
                    text.push_str(&format!(" and {} more", list.len() - SHOWN));
                }
                text
            };
            let who = if p.columns.len() == 1 {
                "its column stays a plain field"
            } else {
                "its columns stay plain fields"
            };
            format!(
                "`{}`: the foreign key {} → `{}` ({}) is declared on {} of its {} partitions, \
                 not on {}: no reference is carried, {who}; if every row has its parent, declare \
                 it in the plan: `references.{} = {{ to = {} }}`",
                table.name,
                backticked_columns(table, &p.columns),
                p.references,
                backticked(&p.referenced_columns),
                p.declared_on.len(),
                keys.partitions,
                names(&p.missing_on),
                quote_key(&p.columns.join(",")),
                quote_string(&p.references.to_string()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{catalog, column, error_with, load_texts, table};
    use super::*;
    use crate::catalog::{PartialForeignKey, PartitionKeys, TableKind};

    /// The shared catalog and: orgs (text key), sessions pointing at orgs without a foreign
    /// key, memberships with a composite key, and grants pointing at memberships without one.
    fn app() -> Catalog {
        let mut catalog = catalog();
        catalog.tables.push(table(
            "orgs",
            vec![column("id", PgType::Text, false), column("name", PgType::Text, false)],
            &["id"],
        ));
        catalog.tables.push(table(
            "sessions",
            vec![
                column("id", PgType::Text, false),
                column("user_id", PgType::Int8, false),
                column("active_org_id", PgType::Varchar, true),
                column("started_at", PgType::Timestamptz, false),
            ],
            &["id"],
        ));
        catalog.tables.push(table(
            "memberships",
            vec![column("org_id", PgType::Text, false), column("user_id", PgType::Int4, false)],
            &["org_id", "user_id"],
        ));
        catalog.tables.push(table(
            "grants",
            vec![
                column("id", PgType::Int8, false),
                column("member", PgType::Int8, false),
                column("org", PgType::Text, false),
            ],
            &["id"],
        ));
        catalog
    }

    fn load(files: &[&str]) -> Result<Plan, PlanError> {
        load_texts(&app(), files)
    }

    fn error(files: &[&str]) -> String {
        error_with(&app(), files)
    }

    #[test]
    fn a_declared_reference_resolves_like_a_foreign_key() {
        let plan = load(&[r#"
[tables."public.sessions".references.active_org_id]
to = "public.orgs"
orphans = "null"

[tables."public.sessions".references.user_id]
to = "public.users"
field = "owner"
"#])
        .unwrap();
        let sessions = plan.table(&TableName::new("public", "sessions")).unwrap();
        let reference = |constraint: &str, field: &str, parent: &str| ReferencePlan {
            constraint: constraint.into(),
            columns: vec![constraint.into()],
            field: field.into(),
            parent: TableName::new("public", parent),
            parent_target: parent.into(),
            orphans: OrphanPolicy::Fail,
            optional: false,
        };
        assert_eq!(
            sessions.references,
            [
                ReferencePlan {
                    orphans: OrphanPolicy::Null,
                    optional: true,
                    ..reference("active_org_id", "activeOrgId", "orgs")
                },
                reference("user_id", "owner", "users"),
            ]
        );
        let fields: Vec<&str> = sessions.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["startedAt"], "the referencing columns are no plain fields");
        assert!(plan.warnings.iter().all(|w| !w.contains("sessions")), "{:?}", plan.warnings);

        // The `columns` entry `init` wrote for the column before the reference was declared
        // does not make it a plain field as well (whose name would clash).
        let later = load(&[
            "[tables.\"public.sessions\"]\ncolumns.active_org_id = { field = \"activeOrgId\" }\n",
            "[tables.\"public.sessions\".references.active_org_id]\nto = \"public.orgs\"\n",
        ])
        .unwrap();
        let sessions = later.table(&TableName::new("public", "sessions")).unwrap();
        assert_eq!(sessions.references[0].field, "activeOrgId");
        assert!(sessions.fields.iter().all(|f| f.column != "active_org_id"));
    }

    #[test]
    fn a_composite_parent_key_takes_the_columns_in_its_order() {
        let plan = load(&[r#"
[tables."public.grants".references.membership]
to = "public.memberships"
columns = ["org", "member"]
"#])
        .unwrap();
        let grants = plan.table(&TableName::new("public", "grants")).unwrap();
        assert_eq!(grants.references.len(), 1);
        let reference = &grants.references[0];
        assert_eq!(reference.columns, ["org", "member"]);
        assert_eq!(reference.field, "membershipsId", "named as a composite foreign key is");
        assert_eq!(reference.parent_target, "memberships");

        // The key may list the columns itself.
        let plan = load(&[r#"
[tables."public.grants".references."org, member"]
to = "public.memberships"
"#])
        .unwrap();
        let grants = plan.table(&TableName::new("public", "grants")).unwrap();
        assert_eq!(grants.references[0].columns, ["org", "member"]);
        assert_eq!(grants.references[0].field, "membershipsId");
    }

    #[test]
    fn to_may_confirm_a_foreign_key_of_the_database() {
        let plain = load(&["[tables.\"public.posts\".references.author_id]\norphans = \"null\"\n"])
            .unwrap();
        let confirmed = load(&[
            "[tables.\"public.posts\".references.author_id]\nto = \"public.users\"\norphans = \"null\"\n",
        ])
        .unwrap();
        assert_eq!(plain.tables, confirmed.tables);
        let by_name = load(&[
            "[tables.\"public.posts\".references.posts_author_id_fkey]\nto = \"public.users\"\norphans = \"null\"\n",
        ])
        .unwrap();
        assert_eq!(plain.tables, by_name.tables);
    }

    #[test]
    fn declared_references_that_cannot_hold_are_refused() {
        let cases = [
            (
                "[tables.\"public.sessions\".references.active_org_id]\nto = \"public.org\"\n",
                "migrations/0001_test.toml:2: `tables.\"public.sessions\".references.active_org_id.to` names table `public.org`, which the export does not hold\nhint: did you mean `public.orgs`?",
            ),
            (
                "[tables.\"public.sessions\".references.active_org]\nto = \"public.orgs\"\n",
                "migrations/0001_test.toml:1: `tables.\"public.sessions\".references.active_org` names column `active_org`, which table `public.sessions` does not have\nhint: did you mean `active_org_id`?",
            ),
            (
                "[tables.\"public.sessions\".references.started_at]\nto = \"public.orgs\"\n",
                "migrations/0001_test.toml:2: `tables.\"public.sessions\".references.started_at`: column `public.sessions.started_at` is `timestamp with time zone` and the legacy id column `id` of `public.orgs` is `text`: Postgres would not compare them, so no row would find its parent\nhint: a reference holds the parent's key: declare it on a column of the same type (or one Postgres compares with it, such as integer and bigint)",
            ),
            (
                "[tables.\"public.posts\".references.author_id]\nto = \"public.comments\"\n",
                "migrations/0001_test.toml:2: `tables.\"public.posts\".references.author_id`: column `public.posts.author_id` is already in the database's foreign key `posts_author_id_fkey` to `public.users`\nhint: the database's foreign key decides where it points: remove `to` (and `columns`) to set this reference's `field` or `orphans`, or drop the constraint in the source",
            ),
            (
                "[tables.\"public.posts\".references.posts_author_id_fkey]\nto = \"public.comments\"\n",
                "migrations/0001_test.toml:2: `tables.\"public.posts\".references.posts_author_id_fkey`: `posts_author_id_fkey` names the database's foreign key to `public.users`, not `public.comments`\nhint: the database's foreign key decides where it points: remove `to` (and `columns`) to set this reference's `field` or `orphans`, or drop the constraint in the source",
            ),
            (
                "[tables.\"public.grants\".references.member]\nto = \"public.memberships\"\n",
                "migrations/0001_test.toml:2: `tables.\"public.grants\".references.member`: `public.memberships` is found by its legacy id (`org_id`, `user_id`), 2 columns; the reference has 1 (`member`)\nhint: list one column of `public.grants` per legacy id column, in that order: `columns = [\"…\", \"…\"]`",
            ),
            (
                "[tables.\"public.grants\".references.m]\nto = \"public.memberships\"\ncolumns = [\"member\", \"org\"]\n",
                "migrations/0001_test.toml:2: `tables.\"public.grants\".references.m`: column `public.grants.member` is `bigint` and the legacy id column `org_id` of `public.memberships` is `text`: Postgres would not compare them, so no row would find its parent\nhint: a reference holds the parent's key: declare it on a column of the same type (or one Postgres compares with it, such as integer and bigint)",
            ),
            (
                "[tables.\"public.grants\".references.m]\nto = \"public.memberships\"\ncolumns = [\"org\", \"org\"]\n",
                "migrations/0001_test.toml:3: `tables.\"public.grants\".references.m.columns[1]`: column `org` is listed twice",
            ),
            (
                "[tables.\"public.orgs\"]\nskip = true\n[tables.\"public.sessions\".references.active_org_id]\nto = \"public.orgs\"\n",
                "migrations/0001_test.toml:4: `tables.\"public.sessions\".references.active_org_id`: `to` names `public.orgs`, which is skipped\nhint: migrate `public.orgs`, or remove this reference: its columns then stay plain fields",
            ),
            (
                "[tables.\"public.sessions\"]\nmerge_into = \"public.users\"\non = [\"user_id\"]\nreferences.active_org_id = { to = \"public.orgs\" }\n",
                "migrations/0001_test.toml:4: `tables.\"public.sessions\".references.active_org_id`: `public.sessions` merges into `public.users`, and a merged table's rows hold no references\nhint: remove `to`, or keep `public.sessions` a table of its own; `on` says how it joins `public.users`",
            ),
            (
                "[tables.\"public.sessions\".references.a]\nto = \"public.orgs\"\ncolumns = [\"active_org_id\"]\n[tables.\"public.sessions\".references.b]\nto = \"public.orgs\"\ncolumns = [\"active_org_id\"]\n",
                "migrations/0001_test.toml:5: `tables.\"public.sessions\".references.b`: `public.sessions.active_org_id` also in `references.a`\nhint: a column holds one reference: keep one of the two entries",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(error(&[text]), expected, "for\n{text}");
        }
    }

    #[test]
    fn the_example_of_the_format_document_loads() {
        // GIVEN the tables docs/plan-format.md's example of declared references names
        let docs = include_str!("../../../docs/plan-format.md");
        let example = docs
            .split("```toml\n")
            .map(|block| block.split("```").next().unwrap())
            .find(|block| block.contains("to = \"public.organization\""))
            .unwrap();
        let mut catalog = catalog();
        catalog.tables.push(table(
            "organization",
            vec![column("id", PgType::Text, false), column("name", PgType::Text, false)],
            &["id"],
        ));
        catalog.tables.push(table(
            "session",
            vec![
                column("id", PgType::Text, false),
                column("active_organization_id", PgType::Text, true),
            ],
            &["id"],
        ));
        catalog.tables.push(table(
            "memberships",
            vec![column("org_id", PgType::Text, false), column("user_id", PgType::Int8, false)],
            &["org_id", "user_id"],
        ));
        catalog.tables.push(table(
            "grants",
            vec![
                column("id", PgType::Int8, false),
                column("org", PgType::Text, false),
                column("member_id", PgType::Int8, false),
            ],
            &["id"],
        ));
        // WHEN it loads THEN both references are there
        let plan = load_texts(&catalog, &[example]).unwrap_or_else(|e| panic!("{e}\n{example}"));
        let session = plan.table(&TableName::new("public", "session")).unwrap();
        assert_eq!(session.references[0].field, "activeOrganizationId");
        assert_eq!(session.references[0].orphans, OrphanPolicy::Null);
        let grants = plan.table(&TableName::new("public", "grants")).unwrap();
        assert_eq!(grants.references[0].columns, ["org", "member_id"]);
    }

    #[test]
    fn keys_only_some_partitions_declare_are_a_warning_until_the_plan_declares_them() {
        let mut catalog = app();
        let mut payment = table(
            "payment",
            vec![column("id", PgType::Int8, false), column("customer_id", PgType::Int8, false)],
            &["id"],
        );
        payment.kind = TableKind::Partitioned;
        let partition = |n: u32| TableName::new("public", format!("payment_p{n}"));
        payment.partition_keys = Some(PartitionKeys {
            partitions: 6,
            attached: Vec::new(),
            partial: vec![PartialForeignKey {
                columns: vec!["customer_id".into()],
                references: TableName::new("public", "users"),
                referenced_columns: vec!["id".into()],
                declared_on: vec![partition(1), partition(2)],
                missing_on: (3..=6).map(partition).collect(),
            }],
        });
        catalog.tables.push(payment);
        let about_payment = |plan: &Plan| -> Vec<String> {
            plan.warnings.iter().filter(|w| w.contains("payment")).cloned().collect()
        };
        let plan = load_texts(&catalog, &[]).unwrap();
        assert_eq!(
            about_payment(&plan),
            [
                "`public.payment`: the foreign key `public.payment.customer_id` → `public.users` (`id`) \
              is declared on 2 of its 6 partitions, not on `public.payment_p3`, `public.payment_p4`, \
              `public.payment_p5` and 1 more: no reference is carried, its column stays a plain \
              field; if every row has its parent, declare it in the plan: \
              `references.customer_id = { to = \"public.users\" }`"
            ]
        );
        let payment = plan.table(&TableName::new("public", "payment")).unwrap();
        assert!(payment.references.is_empty());

        let plan = load_texts(
            &catalog,
            &["[tables.\"public.payment\".references.customer_id]\nto = \"public.users\"\n"],
        )
        .unwrap();
        assert_eq!(about_payment(&plan), Vec::<String>::new());
        let payment = plan.table(&TableName::new("public", "payment")).unwrap();
        assert_eq!(payment.references[0].field, "customerId");
    }
}
