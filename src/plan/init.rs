//! The first plan file, `migrations/0001_initial.toml`, written from the catalog: every default
//! spelled out, so that a person sees what will happen and edits it in place.
//!
//! Loading a plan directory that holds only this file gives the same [`Plan`](super::Plan) as an
//! empty directory: what the file states is exactly what the defaults are (tested below and in
//! `tests/it/plan_init.rs`).

use std::fmt::Write as _;

use super::file::{
    JSON_KEYS, NULLS, Naming, ORPHANS, TYPE_POLICIES, format_offset, key_path, quote_key,
    quote_string, word,
};
use super::resolve::{
    Settings, default_legacy_id, default_target, dropped_by_default, field_name,
    identifier_problem, policies, reference_columns, reference_field_of, reference_key,
};
use crate::catalog::{Catalog, Column, PgType, Table, TableKind};

/// The TOML text `migrate init` writes for `catalog`.
pub fn initial_plan(catalog: &Catalog) -> String {
    let settings = Settings::default();
    let mut out = String::new();
    out.push_str(HEADER);
    out.push('\n');
    defaults(&mut out, &settings);
    for table in &catalog.tables {
        out.push('\n');
        table_block(&mut out, catalog, table, &settings);
    }
    out
}

const HEADER: &str = "\
# The mapping plan: how each exported PostgreSQL table becomes a Convex table.
#
# `migrate init` wrote this file from the catalog in data/manifest.json, spelling out every
# default. Edit it in place, or add files such as `0002_money_as_cents.toml` that hold only what
# changes: the files apply in the order of their numbers, and a later key wins. Every key is
# described in docs/plan-format.md.
#
# Each table states its Convex name (`target`), the columns its legacy id is made of, one
# `columns` entry per field and one `references` entry per foreign key. A `field`, `policy` or
# `orphans` written under a table wins over `[defaults]`: to have a column follow a changed
# default, delete its `policy` here. To leave a table out, set `skip = true`; to fold it into
# another table's documents, `merge_into = \"schema.table\"`; to leave a column out, list it in
# `drop = [...]`.
";

/// Lines whose trailing comments line up, group by group, like a file a person keeps tidy.
#[derive(Default)]
struct Block {
    /// Statement, comment, alignment group.
    lines: Vec<(String, Option<String>, usize)>,
    group: usize,
}

/// Comments start at this column at most; longer statements push their comment right.
const COMMENT_COLUMN: usize = 72;

impl Block {
    fn line(&mut self, statement: impl Into<String>, comment: impl Into<String>) {
        let comment = comment.into();
        self.lines.push((statement.into(), (!comment.is_empty()).then_some(comment), self.group));
    }

    /// The next lines align their comments among themselves.
    fn group(&mut self) {
        self.group += 1;
    }

    fn render(self, out: &mut String) {
        let mut widths = vec![0; self.group + 1];
        for (statement, comment, group) in &self.lines {
            let width = statement.chars().count();
            if comment.is_some() && width <= COMMENT_COLUMN {
                widths[*group] = widths[*group].max(width);
            }
        }
        for (statement, comment, group) in self.lines {
            match comment.as_deref().map(comment_text) {
                None => out.push_str(&statement),
                Some(comment) if statement.is_empty() => {
                    let _ = write!(out, "# {comment}");
                }
                Some(comment) => {
                    let pad = widths[group].saturating_sub(statement.chars().count());
                    let _ = write!(out, "{statement}{:pad$}  # {comment}", "");
                }
            }
            out.push('\n');
        }
    }
}

/// `text` fit for a TOML comment, which ends at a newline and may hold no other control
/// character but tab: each is written as its escape (`\n`, `\u0007`). Names and enum labels
/// from the catalog can hold any of them.
fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c != '\t' && (c <= '\u{1f}' || c == '\u{7f}') => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// An enum label as the comments show it: as it is when plain, else as a TOML string, so that
/// commas, quotes and control characters cannot blur where one label ends.
fn label_text(label: &str) -> String {
    let plain = !label.is_empty()
        && label.chars().all(|c| !c.is_control() && !matches!(c, ',' | '"' | '\\' | '\''));
    if plain { label.to_owned() } else { quote_string(label) }
}

fn choices<T>(choices: &[(&'static str, T)]) -> String {
    choices.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(" | ")
}

fn setting(key: &str, value: &str) -> String {
    format!("{key} = {}", quote_string(value))
}

fn defaults(out: &mut String, settings: &Settings) {
    let mut block = Block::default();
    block.line("[defaults]", "");
    block.line(
        setting("naming", word(&Naming::CHOICES, &settings.naming)),
        format!("field names from column names: {}", choices(&Naming::CHOICES)),
    );
    block.line(
        setting("legacy_id_field", &settings.legacy_id_field),
        "the field holding the source row's key as a string",
    );
    block.line(
        setting("nulls", word(&NULLS, &settings.nulls)),
        "SQL NULL: omit (leave the field out, Convex's optional) | null (store null)",
    );
    block.line(
        setting("orphans", word(&ORPHANS, &settings.orphans)),
        format!("a reference to a missing row: {}", choices(&ORPHANS)),
    );
    block.line(
        setting("json_keys", word(&JSON_KEYS, &settings.json_keys)),
        "json keys Convex forbids ($x, _x, non-ASCII): rename | reject",
    );
    block.line(
        setting("timestamp_offset", &format_offset(settings.timestamp_offset)),
        "the offset from UTC naive `timestamp` values are read at",
    );
    block.render(out);
    out.push('\n');

    let mut block = Block::default();
    block.line("[defaults.types]", "value policy per type, for columns without a `policy`");
    for (t, policy) in TYPE_POLICIES.iter().zip(settings.types) {
        let choices: Vec<String> = t
            .choices
            .iter()
            .map(|(p, note)| match *note {
                "" => p.name().to_owned(),
                note => format!("{} ({note})", p.name()),
            })
            .collect();
        block.line(setting(t.key, policy.name()), format!("{}: {}", t.label, choices.join(" | ")));
    }
    block.render(out);
}

/// `bigint, not null`, `mood (enum: sad, ok, happy), nullable`, `email (domain over text), …`.
fn describe(column: &Column) -> String {
    let mut text = column.sql_type.clone();
    if let Some(domain) = &column.domain {
        let _ = write!(text, " (domain {domain} over {})", column.ty.name());
    }
    if let PgType::Enum { labels, .. } = &column.ty {
        let labels: Vec<String> = labels.iter().map(|l| label_text(l)).collect();
        let _ = write!(text, " (enum: {})", labels.join(", "));
    }
    text.push_str(if column.nullable { ", nullable" } else { ", not null" });
    if column.generated {
        text.push_str(", generated");
    }
    text
}

fn name_problem(name: &str) -> String {
    match identifier_problem(name) {
        Some(problem) => format!("; not a valid Convex name ({problem}): rename it"),
        None => String::new(),
    }
}

fn table_block(out: &mut String, catalog: &Catalog, table: &Table, settings: &Settings) {
    let mut block = Block::default();
    let mut about = match table.kind {
        TableKind::Table => String::new(),
        TableKind::Partitioned => "partitioned table, ".into(),
        TableKind::View => "view, ".into(),
        TableKind::MaterializedView => "materialized view, ".into(),
        TableKind::Foreign => "foreign table, ".into(),
    };
    about.push_str(&match table.estimated_rows {
        Some(1) => "~1 row (planner estimate)".into(),
        Some(rows) => format!("~{rows} rows (planner estimate)"),
        None => "row count unknown (never analyzed)".into(),
    });
    let header = key_path("tables", &table.name.to_string());
    block.line(format!("[{header}]"), about);

    let target = default_target(&table.name);
    block.line(setting("target", &target), format!("the Convex table{}", name_problem(&target)));

    let legacy = default_legacy_id(table);
    match &legacy {
        Some(columns) => {
            let kind = if table.primary_key == *columns { "primary key" } else { "unique key" };
            let types: Vec<&str> = columns
                .iter()
                .filter_map(|c| table.column(c))
                .map(|c| c.sql_type.as_str())
                .collect();
            block.line(
                format!(
                    "legacy_id = [{}]",
                    columns.iter().map(|c| quote_string(c)).collect::<Vec<_>>().join(", ")
                ),
                format!("{kind} ({})", types.join(", ")),
            );
        }
        None => block.line(
            "legacy_id = []",
            "no primary key or unique key: list the columns that identify a row, or `skip = true`",
        ),
    }

    // Foreign keys to an exported parent's legacy id become references; their columns are not
    // fields. Any other foreign key's columns stay plain fields.
    let references: Vec<_> = table
        .foreign_keys
        .iter()
        .filter(|fk| {
            catalog
                .table(&fk.references)
                .and_then(default_legacy_id)
                .is_some_and(|legacy| reference_columns(fk, &legacy).is_some())
        })
        .collect();
    let legacy = legacy.unwrap_or_default();
    block.group();
    for column in &table.columns {
        // The one column of a legacy id is in the legacy id only; the columns of a legacy id of
        // several columns are fields too.
        let in_reference = references.iter().any(|fk| fk.columns.contains(&column.name));
        if in_reference || legacy == std::slice::from_ref(&column.name) {
            continue;
        }
        let field = field_name(settings.naming, &column.name);
        let mut entry = format!("field = {}", quote_string(&field));
        if let Some(policy) = settings.type_policy(&column.ty) {
            debug_assert!(policies(&column.ty).contains(&policy));
            let _ = write!(entry, ", policy = {}", quote_string(policy.name()));
        }
        if matches!(column.ty, PgType::Json | PgType::Jsonb) {
            let _ = write!(
                entry,
                ", json_keys = {}",
                quote_string(word(&JSON_KEYS, &settings.json_keys))
            );
        }
        let statement = format!("columns.{} = {{ {entry} }}", quote_key(&column.name));
        let mut comment = describe(column);
        if dropped_by_default(column) {
            comment.push_str(": derived data, left out; uncomment to migrate it");
            block.line(format!("# {statement}"), comment);
            continue;
        }
        if let PgType::Other(_) = column.ty {
            comment.push_str("; no policy for this type: migrated as its text form");
        }
        if column.ty == PgType::Bpchar {
            comment.push_str("; padding trimmed (`trim = false` keeps it)");
        }
        if legacy.contains(&column.name) {
            comment.push_str("; part of the legacy id, a field too");
        }
        if matches!(column.ty, PgType::Timestamp | PgType::Timestamptz)
            && settings.type_policy(&column.ty) == Some(super::file::Policy::Ms)
        {
            comment.push_str(
                "; `ms` drops sub-millisecond digits (transform counts them), `iso` keeps them",
            );
        }
        comment.push_str(&name_problem(&field));
        block.line(statement, comment);
    }

    block.group();
    for fk in &table.foreign_keys {
        let key = reference_key(table, fk);
        let types: Vec<String> =
            fk.columns.iter().filter_map(|c| table.column(c)).map(describe).collect();
        if references.iter().all(|r| r.name != fk.name) {
            let why = if catalog.table(&fk.references).is_none() {
                format!("`{}` is not exported", fk.references)
            } else {
                format!("it references `{}` by other columns than its legacy id", fk.references)
            };
            block.line(
                "",
                format!("references.{}: {why}, so its columns stay plain fields", quote_key(&key)),
            );
            continue;
        }
        let parent_target = default_target(&fk.references);
        let field = reference_field_of(
            settings.naming,
            table,
            fk,
            &parent_target,
            &settings.legacy_id_field,
        );
        let on_partitions =
            table.partition_keys.as_ref().is_some_and(|keys| keys.attached.contains(&fk.name));
        block.line(
            format!(
                "references.{} = {{ field = {}, orphans = {} }}",
                quote_key(&key),
                quote_string(&field),
                quote_string(word(&ORPHANS, &settings.orphans))
            ),
            format!(
                "→ {} as `{parent_target}`; {}{}{}",
                fk.references,
                types.join("; "),
                if on_partitions { "; declared on every partition, not on the table" } else { "" },
                name_problem(&field)
            ),
        );
    }
    let partitions = table.partition_keys.as_ref().map_or(0, |keys| keys.partitions);
    for partial in table.partition_keys.iter().flat_map(|keys| &keys.partial) {
        block.line(
            "",
            format!(
                "references.{}: only {} of {partitions} partitions declare a foreign key to `{}`, \
                 so its columns stay plain fields; if every row has its parent, add `to = {}`",
                quote_key(&partial.columns.join(",")),
                partial.declared_on.len(),
                partial.references,
                quote_string(&partial.references.to_string())
            ),
        );
    }
    block.render(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ForeignKey, TableName};
    use crate::plan::resolve::tests::{catalog, column, fk, load_texts, table};

    /// The property `migrate init` promises: its file states exactly the defaults.
    #[track_caller]
    fn assert_round_trip(catalog: &Catalog) -> String {
        let text = initial_plan(catalog);
        let from_file = load_texts(catalog, &[&text]).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let from_nothing = load_texts(catalog, &[]).unwrap();
        assert_eq!(from_file, from_nothing, "\n{text}");
        text
    }

    #[test]
    fn the_initial_plan_states_exactly_the_defaults() {
        let text = assert_round_trip(&catalog());
        assert!(text.contains("[tables.\"public.users\"]"), "{text}");
        assert!(text.contains("columns.balance = { field = \"balance\", policy = \"number\" }"));
        assert!(
            text.contains("references.author_id = { field = \"authorId\", orphans = \"fail\" }")
        );
        assert!(text.contains("# columns.search = { field = \"search\" }"), "{text}");
    }

    #[test]
    fn awkward_names_are_quoted_and_still_round_trip() {
        let mut items = table(
            "Order Items",
            vec![
                column("id", PgType::Int4, false),
                column("item name", PgType::Text, false),
                column("say \"hi\"", PgType::Text, true),
                column("a.b", PgType::Jsonb, true),
            ],
            &["id"],
        );
        items.foreign_keys.push(ForeignKey {
            name: "items_owner_fkey".into(),
            columns: vec!["id".into()],
            references: TableName::new("auth", "users"),
            referenced_columns: vec!["id".into()],
        });
        let mut lines = table(
            "lines",
            vec![
                column("order_id", PgType::Int4, false),
                column("item_id", PgType::Int4, true),
                column("note", PgType::Other("point".into()), true),
            ],
            &[],
        );
        lines.unique_keys.push(vec!["order_id".into(), "item_id".into()]);
        // Two foreign keys on the same columns: each is named by its constraint.
        lines.foreign_keys.push(fk(
            "lines_a_fkey",
            &["order_id", "item_id"],
            "order_pairs",
            &["item", "order"],
        ));
        lines.foreign_keys.push(fk(
            "lines_b_fkey",
            &["order_id", "item_id"],
            "lines",
            &["order_id", "item_id"],
        ));
        let pairs = table(
            "order_pairs",
            vec![column("order", PgType::Int4, false), column("item", PgType::Int4, false)],
            &["order", "item"],
        );
        let text = assert_round_trip(&Catalog { tables: vec![items, lines, pairs] });
        assert!(text.contains("[tables.\"public.Order Items\"]"), "{text}");
        assert!(text.contains("columns.\"item name\" = { field = \"itemName\" }"), "{text}");
        assert!(text.contains("columns.\"say \\\"hi\\\"\" = { field = \"sayHi\" }"), "{text}");
        assert!(
            text.contains("columns.\"a.b\" = { field = \"aB\", json_keys = \"rename\" }"),
            "{text}"
        );
        assert!(text.contains("references.lines_a_fkey = { field = \"orderPairsId\""), "{text}");
        assert!(text.contains("references.lines_b_fkey = { field = \"linesId\""), "{text}");
        assert!(text.contains("# references.id: `auth.users` is not exported"), "{text}");
        assert!(text.contains("legacy_id = [\"order_id\", \"item_id\"]"), "{text}");
    }

    #[test]
    fn control_characters_in_labels_and_names_stay_inside_strings_and_comments() {
        let labels = ["ok", "two\nlines", "say \"hi\"", "back\\slash", "bell\u{7}", "a, b"];
        let mut mood = column(
            "mo\nod",
            PgType::Enum {
                name: "public.mo\nod".into(),
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            },
            false,
        );
        mood.sql_type = "\"mo\nod\"".into();
        let odd = table("odd\ntable\r", vec![column("id", PgType::Int4, false), mood], &["id"]);
        let text = assert_round_trip(&Catalog { tables: vec![odd] });
        assert!(
            text.contains(
                r#"(enum: ok, "two\nlines", "say \"hi\"", "back\\slash", "bell\u0007", "a, b")"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"[tables."public.odd\ntable\r"]"#), "{text}");
        assert!(text.contains(r#"columns."mo\nod" = "#), "{text}");
    }

    #[test]
    fn a_foreign_key_to_a_unique_key_stays_a_plain_field_and_round_trips() {
        let mut users = table(
            "users",
            vec![column("id", PgType::Int8, false), column("email", PgType::Text, false)],
            &["id"],
        );
        users.unique_keys.push(vec!["email".into()]);
        let mut posts = table(
            "posts",
            vec![column("id", PgType::Int8, false), column("author_email", PgType::Text, false)],
            &["id"],
        );
        posts.foreign_keys.push(fk(
            "posts_author_email_fkey",
            &["author_email"],
            "users",
            &["email"],
        ));
        let text = assert_round_trip(&Catalog { tables: vec![posts, users] });
        assert!(text.contains("columns.author_email = { field = \"authorEmail\" }"), "{text}");
        assert!(
            text.contains(
                "# references.author_email: it references `public.users` by other columns than \
                 its legacy id, so its columns stay plain fields"
            ),
            "{text}"
        );
    }

    #[test]
    fn keys_that_are_references_and_composite_keys_are_spelled_out_and_round_trip() {
        // GIVEN profiles extending auth.users one to one, and a key of three columns
        let mut catalog = crate::plan::resolve::tests::supabase_catalog();
        let stores = table("stores", vec![column("id", PgType::Int4, false)], &["id"]);
        let mut payments = table(
            "payments",
            vec![
                column("payment_id", PgType::Int4, false),
                column("payment_date", PgType::Timestamptz, false),
                column("store_id", PgType::Int4, false),
            ],
            &["payment_id", "payment_date", "store_id"],
        );
        payments.foreign_keys.push(fk("payments_store_fkey", &["store_id"], "stores", &["id"]));
        catalog.tables.extend([payments, stores]);

        // WHEN init writes the plan THEN it states the defaults
        let text = assert_round_trip(&catalog);
        // the reference on a primary key reads as one
        assert!(
            text.contains("references.id = { field = \"userId\", orphans = \"fail\" }"),
            "{text}"
        );
        // the columns of the key are fields, the foreign-key column its reference's
        let line = |start: &str| text.lines().find(|l| l.starts_with(start)).unwrap_or_default();
        assert!(line("columns.payment_id = ").ends_with("; part of the legacy id, a field too"));
        assert!(line("columns.payment_date = ").contains("policy = \"ms\""), "{text}");
        assert_eq!(line("columns.store_id = "), "");
        assert!(line("columns.locale = ").contains("padding trimmed (`trim = false` keeps it)"));
        // and a single-column key stays in the legacy id only
        assert!(!text.contains("columns.id = "), "{text}");
    }

    #[test]
    fn a_table_without_a_key_gets_an_empty_legacy_id_that_loading_points_at() {
        let log = table("log", vec![column("line", PgType::Text, false)], &[]);
        let catalog = Catalog { tables: vec![log] };
        let text = initial_plan(&catalog);
        let error = load_texts(&catalog, &[&text]).unwrap_err();
        let line = text.lines().position(|l| l.starts_with("legacy_id = []")).unwrap() + 1;
        assert_eq!(
            error.to_string(),
            format!(
                "migrations/0001_test.toml:{line}: `tables.\"public.log\".legacy_id`: the list is empty"
            )
        );
    }
}
