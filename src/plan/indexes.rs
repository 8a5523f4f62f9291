//! The Convex indexes of a migrated table, derived from the source's indexes and the plan's
//! fields: what `init` carries over, the index each reference gets, what cannot be carried and
//! why, and the field sets that were unique in the source (for verify).
//!
//! Rules, in the order they apply to each source index:
//! - the primary key when it is the legacy id is `by_legacy_id` already (no note); any other
//!   index that starts with the legacy id columns is served by it (noted);
//! - only `btree`, `hash` and `brin` indexes have a Convex counterpart (an ordered index on
//!   field values); an index on an expression or a partial index (`WHERE …`) has none;
//! - every key column must map to a field: a plain field of its own column, or a reference field
//!   (a composite reference's columns side by side, in any order);
//! - at most [`MAX_INDEX_FIELDS`] fields;
//! - indexes with the same fields become one (a unique one says so).
//!
//! Then every reference field that no carried index starts with gets `by_<field>`, as Convex
//! recommends for relations. Over [`MAX_INDEXES_PER_TABLE`] (counting `by_legacy_id`), unique
//! indexes are kept first, then those serving references, then the rest in name order. Indexes
//! of a table merged into this one are not carried. Names are `by_<field>_and_<field>`, made
//! unique in the table, never a reserved or over-long name.

use std::collections::{BTreeSet, HashMap};

use super::codegen::LEGACY_ID_INDEX;
use super::model::{IndexPlan, Indexes, TablePlan, UniqueKey};
use super::resolve::dropped_by_default;
use crate::catalog::{Catalog, Index, IndexKey, Table};
use crate::convex::rules::{
    MAX_IDENTIFIER_LEN, MAX_INDEX_FIELDS, MAX_INDEXES_PER_TABLE, RESERVED_INDEX_NAMES,
};

/// Access methods whose indexes a Convex index (ordered by field values) can stand in for.
const ORDERED_METHODS: [&str; 3] = ["btree", "hash", "brin"];

/// The indexes of `plan`'s table, from the catalog's `table` and the tables merged into it, and
/// `extra`, the columns of one more index the plan asks for (`index = [...]`; empty: none).
pub fn derive(catalog: &Catalog, plan: &TablePlan, extra: &[String]) -> Indexes {
    let Some(table) = catalog.table(&plan.source) else { return Indexes::default() };
    let with_extra;
    let table = if extra.is_empty() {
        table
    } else {
        let mut t = table.clone();
        t.indexes.push(Index {
            name: "the plan's `index`".into(),
            method: "btree".into(),
            keys: extra.iter().map(|c| IndexKey::Column(c.clone())).collect(),
            unique: false,
            primary: false,
            nulls_not_distinct: false,
            predicate: None,
        });
        with_extra = t;
        &with_extra
    };
    let fields = FieldMap::new(plan);
    let mut notes = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut unique = Vec::new();
    for index in &table.indexes {
        let mapped = carry(index, table, plan, &fields);
        if let Some(key) = unique_key(index, plan, &fields)
            && !unique.iter().any(|u: &UniqueKey| u.fields == key.fields)
        {
            unique.push(key);
        }
        match mapped {
            Carry::Silently => {}
            Carry::No(why) => notes.push(format!("{}: {why}", describe(index))),
            Carry::Fields(fields) => match candidates.iter_mut().find(|c| c.fields == fields) {
                Some(same) => {
                    same.sources.push(index.name.clone());
                    same.unique |= index.unique;
                }
                None => candidates.push(Candidate {
                    fields,
                    sources: vec![index.name.clone()],
                    unique: index.unique,
                    reference: None,
                }),
            },
        }
    }
    for reference in &plan.references {
        if candidates.iter().any(|c| c.fields.first() == Some(&reference.field)) {
            continue;
        }
        let columns = reference.columns.join(", ");
        candidates.push(Candidate {
            fields: vec![reference.field.clone()],
            sources: Vec::new(),
            unique: false,
            reference: Some(format!("the reference {columns} → {}", reference.parent)),
        });
    }

    // Which to keep under the limit: unique first, then those serving a reference, then the
    // rest, each group in the order found.
    let references: BTreeSet<&str> = plan.references.iter().map(|r| r.field.as_str()).collect();
    let rank = |c: &Candidate| match () {
        _ if c.unique => 0,
        _ if c.fields.first().is_some_and(|f| references.contains(f.as_str())) => 1,
        _ => 2,
    };
    let mut by_rank: Vec<usize> = (0..candidates.len()).collect();
    by_rank.sort_by_key(|&i| rank(&candidates[i]));
    let room = MAX_INDEXES_PER_TABLE - 1;
    let kept: BTreeSet<usize> = by_rank.iter().copied().take(room).collect();
    for &i in by_rank.iter().skip(room) {
        let c = &candidates[i];
        let what = match &c.reference {
            Some(reference) => format!("an index on `{}` for {reference}", c.fields[0]),
            None => backticked(&c.sources),
        };
        notes.push(format!(
            "{what}: over Convex's limit of {MAX_INDEXES_PER_TABLE} indexes per table \
             (`{LEGACY_ID_INDEX}` included)"
        ));
    }

    let mut taken: BTreeSet<String> = RESERVED_INDEX_NAMES.iter().map(|n| n.to_string()).collect();
    taken.insert(LEGACY_ID_INDEX.to_owned());
    let mut carried = Vec::new();
    for (i, candidate) in candidates.into_iter().enumerate() {
        if !kept.contains(&i) {
            continue;
        }
        let name = index_name(&candidate.fields, &taken);
        taken.insert(name.clone());
        let note = candidate.reference.unwrap_or_else(|| candidate.sources.join(", "));
        carried.push(IndexPlan { name, fields: candidate.fields, note, unique: candidate.unique });
    }

    for merge in &plan.merges {
        let Some(merged) = catalog.table(&merge.source) else { continue };
        for index in &merged.indexes {
            let on_key = index.columns().is_some_and(|columns| same_set(&columns, &merge.on));
            if index.primary || on_key {
                continue;
            }
            notes.push(format!(
                "{} of `{}`: that table is merged into this one, and its indexes are not \
                 carried over",
                describe(index),
                merge.source
            ));
        }
    }
    Indexes { carried, notes, unique }
}

/// A Convex index to be: its fields, and what it comes from.
struct Candidate {
    fields: Vec<String>,
    /// Source index names.
    sources: Vec<String>,
    unique: bool,
    /// For an index made for a reference: which.
    reference: Option<String>,
}

/// What becomes of one source index.
enum Carry {
    /// Nothing to say: the primary key that is the legacy id.
    Silently,
    /// Not carried, for this reason.
    No(String),
    Fields(Vec<String>),
}

fn carry(index: &Index, table: &Table, plan: &TablePlan, fields: &FieldMap<'_>) -> Carry {
    let legacy = &plan.legacy_id.columns;
    if !ORDERED_METHODS.contains(&index.method.as_str()) {
        return Carry::No(format!(
            "a {} index; a Convex index orders documents by field values, which serves none of \
             its lookups",
            index.method
        ));
    }
    let Some(columns) = index.columns() else {
        return Carry::No(
            "an index on an expression; a Convex index holds fields, not expressions".into(),
        );
    };
    if index.predicate.is_some() {
        return Carry::No(
            "a partial index; a Convex index holds every document of its table".into(),
        );
    }
    if columns.len() >= legacy.len() && same_set(&columns[..legacy.len()], legacy) {
        if index.primary && columns.len() == legacy.len() {
            return Carry::Silently;
        }
        return Carry::No(format!(
            "it starts with the legacy id, which `{LEGACY_ID_INDEX}` serves (one document per \
             legacy id)"
        ));
    }
    let mapped = match fields.map(&columns) {
        Ok(mapped) => mapped,
        Err(column) => return Carry::No(fields.why_not(column, table, plan)),
    };
    if mapped.len() > MAX_INDEX_FIELDS {
        return Carry::No(format!(
            "{} fields; a Convex index holds at most {MAX_INDEX_FIELDS}",
            mapped.len()
        ));
    }
    Carry::Fields(mapped)
}

/// The unique key verify checks for `index`, when it is one that verify can check and does not
/// check already: a unique index on columns that are all fields, without a predicate, that does
/// not hold the whole legacy id (the legacy id is unique already).
fn unique_key(index: &Index, plan: &TablePlan, fields: &FieldMap<'_>) -> Option<UniqueKey> {
    if !index.unique || index.predicate.is_some() {
        return None;
    }
    let columns = index.columns()?;
    if plan.legacy_id.columns.iter().all(|c| columns.contains(&c.as_str())) {
        return None;
    }
    let fields = fields.map(&columns).ok()?;
    Some(UniqueKey {
        index: index.name.clone(),
        fields,
        nulls_not_distinct: index.nulls_not_distinct,
    })
}

/// `users_email_key (email)`, `users_lower_idx (lower(email))`, `… where deleted_at IS NULL`.
fn describe(index: &Index) -> String {
    let keys: Vec<&str> = index
        .keys
        .iter()
        .map(|k| match k {
            IndexKey::Column(name) | IndexKey::Expression(name) => name.as_str(),
        })
        .collect();
    let mut text = format!("`{}` ({})", index.name, keys.join(", "));
    if let Some(predicate) = &index.predicate {
        text.push_str(&format!(" where {predicate}"));
    }
    text
}

fn backticked(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn same_set<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| y.as_ref() == x.as_ref()))
}

/// Which field holds each column of the table, as an index sees it.
struct FieldMap<'p> {
    /// Plain fields and single-column references (a reference wins: the index serves the
    /// relation).
    single: HashMap<&'p str, &'p str>,
    /// Composite references: their columns and field.
    composite: Vec<(&'p [String], &'p str)>,
}

impl<'p> FieldMap<'p> {
    fn new(plan: &'p TablePlan) -> Self {
        let mut single = HashMap::new();
        // A field found inside a json column is not the column: an index on the column is not
        // an index on it.
        for field in plan.fields.iter().rev().filter(|f| f.path.is_empty()) {
            single.insert(field.column.as_str(), field.field.as_str());
        }
        for file in &plan.files {
            single.insert(file.column.as_str(), file.field.as_str());
        }
        let mut composite = Vec::new();
        for reference in &plan.references {
            match reference.columns.as_slice() {
                [column] => {
                    single.insert(column.as_str(), reference.field.as_str());
                }
                columns => composite.push((columns, reference.field.as_str())),
            }
        }
        Self { single, composite }
    }

    /// The fields of `columns`, in order and each once; or the first column that is no field.
    fn map<'c>(&self, columns: &[&'c str]) -> Result<Vec<String>, &'c str> {
        let mut fields: Vec<String> = Vec::new();
        let mut i = 0;
        while i < columns.len() {
            let rest = &columns[i..];
            let composite = self
                .composite
                .iter()
                .find(|(cols, _)| cols.len() <= rest.len() && same_set(&rest[..cols.len()], cols));
            let (field, width) = match composite {
                Some((cols, field)) => (*field, cols.len()),
                None => match self.single.get(columns[i]) {
                    Some(field) => (*field, 1),
                    None => return Err(columns[i]),
                },
            };
            if !fields.iter().any(|f| f == field) {
                fields.push(field.to_owned());
            }
            i += width;
        }
        Ok(fields)
    }

    /// Why `column` is no field of the table.
    fn why_not(&self, column: &str, table: &Table, plan: &TablePlan) -> String {
        if plan.legacy_id.columns.iter().any(|c| c == column) {
            return format!(
                "`{column}` is part of the legacy id and not a field of its own (list it under \
                 `columns` in the plan to keep it as a field too)"
            );
        }
        if let Some((_, field)) =
            self.composite.iter().find(|(cols, _)| cols.iter().any(|c| c == column))
        {
            return format!(
                "`{column}` belongs to the reference `{field}`, whose columns the index does not \
                 hold side by side"
            );
        }
        match table.column(column) {
            Some(c) if dropped_by_default(c) => format!(
                "`{column}` is not migrated ({} is derived data, left out unless listed under \
                 `columns` in the plan)",
                if c.generated { "a generated column" } else { "tsvector" }
            ),
            _ => format!("`{column}` is not migrated (the plan drops it)"),
        }
    }
}

/// `by_<f1>_and_<f2>…`, cut to Convex's identifier length, with `_2`, `_3`, … when `taken`
/// holds it already.
fn index_name(fields: &[String], taken: &BTreeSet<String>) -> String {
    let base = format!("by_{}", fields.join("_and_"));
    // Field names are ASCII identifiers: any byte is a character boundary.
    let cut = |text: &str, room: usize| text[..text.len().min(room)].to_owned();
    let mut name = cut(&base, MAX_IDENTIFIER_LEN);
    let mut n = 2;
    while taken.contains(&name) {
        let suffix = format!("_{n}");
        name = format!("{}{suffix}", cut(&base, MAX_IDENTIFIER_LEN - suffix.len()));
        n += 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{PgType, TableName};
    use crate::plan::resolve::tests::{column, fk, load_texts, table};

    fn index(name: &str, columns: &[&str]) -> Index {
        Index {
            name: name.into(),
            method: "btree".into(),
            keys: columns.iter().map(|c| IndexKey::Column((*c).into())).collect(),
            unique: false,
            primary: false,
            nulls_not_distinct: false,
            predicate: None,
        }
    }

    fn unique(mut index: Index) -> Index {
        index.unique = true;
        index
    }

    fn pkey(table: &str, columns: &[&str]) -> Index {
        Index { primary: true, ..unique(index(&format!("{table}_pkey"), columns)) }
    }

    /// users (id, email, org_id, name, bio, search) and posts (id, author_id → users, title,
    /// org_id, created_at), with the indexes each test adds.
    fn catalog(users: Vec<Index>, posts: Vec<Index>) -> Catalog {
        let mut u = table(
            "users",
            vec![
                column("id", PgType::Int8, false),
                column("email", PgType::Text, false),
                column("org_id", PgType::Int4, true),
                column("name", PgType::Text, true),
                column("bio", PgType::Text, true),
                column("search", PgType::Tsvector, true),
            ],
            &["id"],
        );
        u.indexes = vec![pkey("users", &["id"])];
        u.indexes.extend(users);
        let mut p = table(
            "posts",
            vec![
                column("id", PgType::Int8, false),
                column("author_id", PgType::Int8, false),
                column("title", PgType::Text, false),
                column("org_id", PgType::Int4, true),
                column("created_at", PgType::Timestamptz, false),
            ],
            &["id"],
        );
        p.foreign_keys.push(fk("posts_author_id_fkey", &["author_id"], "users", &["id"]));
        p.indexes = vec![pkey("posts", &["id"])];
        p.indexes.extend(posts);
        Catalog { tables: vec![p, u] }
    }

    fn indexes_of(catalog: &Catalog, plan_files: &[&str], target: &str) -> Indexes {
        let plan = load_texts(catalog, plan_files).unwrap_or_else(|e| panic!("{e}"));
        plan.target(target).unwrap().indexes.clone()
    }

    fn carried(indexes: &Indexes) -> Vec<(String, Vec<String>, bool)> {
        indexes.carried.iter().map(|i| (i.name.clone(), i.fields.clone(), i.unique)).collect()
    }

    fn entry(name: &str, fields: &[&str], unique: bool) -> (String, Vec<String>, bool) {
        (name.into(), fields.iter().map(|f| (*f).to_owned()).collect(), unique)
    }

    #[test]
    fn column_indexes_become_indexes_on_their_fields_and_references_get_one() {
        let catalog = catalog(
            vec![
                unique(index("users_email_key", &["email"])),
                index("users_org_id_name_idx", &["org_id", "name"]),
            ],
            vec![index("posts_created_at_idx", &["created_at"])],
        );
        let users = indexes_of(&catalog, &[], "users");
        assert_eq!(
            carried(&users),
            [
                entry("by_email", &["email"], true),
                entry("by_orgId_and_name", &["orgId", "name"], false)
            ]
        );
        assert_eq!(users.notes, Vec::<String>::new());
        assert_eq!(users.unique.len(), 1);
        assert_eq!(users.unique[0].fields, ["email"]);
        assert_eq!(users.unique[0].index, "users_email_key");

        // The reference gets an index of its own; the primary key is by_legacy_id.
        let posts = indexes_of(&catalog, &[], "posts");
        assert_eq!(
            carried(&posts),
            [
                entry("by_createdAt", &["createdAt"], false),
                entry("by_authorId", &["authorId"], false)
            ]
        );
        assert_eq!(posts.carried[1].note, "the reference author_id → public.users");
        assert!(posts.unique.is_empty());
    }

    #[test]
    fn the_plan_asks_for_one_more_index_on_columns_the_source_does_not_index() {
        let catalog = catalog(vec![], vec![]);
        let plan = "[tables.\"public.posts\"]\nindex = [\"org_id\", \"author_id\"]\n";
        let posts = indexes_of(&catalog, &[plan], "posts");
        // It starts with no reference, so `author_id` still gets its own.
        assert_eq!(
            carried(&posts),
            [
                entry("by_orgId_and_authorId", &["orgId", "authorId"], false),
                entry("by_authorId", &["authorId"], false)
            ]
        );
        let unknown = "[tables.\"public.posts\"]\nindex = [\"nope\"]\n";
        let error = load_texts(&catalog, &[unknown]).unwrap_err().to_string();
        assert!(error.contains("nope"), "{error}");
    }

    #[test]
    fn an_index_starting_with_a_reference_serves_it_and_an_identical_one_is_merged() {
        let catalog = catalog(
            vec![],
            vec![
                index("posts_author_id_created_at_idx", &["author_id", "created_at"]),
                index("posts_title_idx", &["title"]),
                unique(index("posts_title_key", &["title"])),
            ],
        );
        let posts = indexes_of(&catalog, &[], "posts");
        assert_eq!(
            carried(&posts),
            [
                entry("by_authorId_and_createdAt", &["authorId", "createdAt"], false),
                entry("by_title", &["title"], true)
            ]
        );
        assert_eq!(posts.carried[1].note, "posts_title_idx, posts_title_key");
    }

    #[test]
    fn what_cannot_be_carried_is_noted_with_the_reason() {
        let expression = Index {
            keys: vec![IndexKey::Expression("lower(email)".into())],
            ..index("users_lower_idx", &[])
        };
        let partial =
            Index { predicate: Some("bio IS NOT NULL".into()), ..index("users_bio_idx", &["bio"]) };
        let gin = Index { method: "gin".into(), ..index("users_search_idx", &["search"]) };
        let wide: Vec<String> = (0..17).map(|i| format!("c{i}")).collect();
        let catalog = catalog(
            vec![
                expression,
                partial,
                gin,
                index("users_id_email_idx", &["id", "email"]),
                index("users_email_id_idx", &["email", "id"]),
                index("users_bio_name_idx", &["bio", "name"]),
                index("users_search_name_idx", &["search", "name"]),
            ],
            vec![],
        );
        let users =
            indexes_of(&catalog, &["[tables.\"public.users\"]\ndrop = [\"bio\"]\n"], "users");
        assert!(users.carried.is_empty(), "{:?}", users.carried);
        assert_eq!(
            users.notes,
            [
                "`users_lower_idx` (lower(email)): an index on an expression; a Convex index \
                 holds fields, not expressions",
                "`users_bio_idx` (bio) where bio IS NOT NULL: a partial index; a Convex index \
                 holds every document of its table",
                "`users_search_idx` (search): a gin index; a Convex index orders documents by \
                 field values, which serves none of its lookups",
                "`users_id_email_idx` (id, email): it starts with the legacy id, which \
                 `by_legacy_id` serves (one document per legacy id)",
                "`users_email_id_idx` (email, id): `id` is part of the legacy id and not a field \
                 of its own (list it under `columns` in the plan to keep it as a field too)",
                "`users_bio_name_idx` (bio, name): `bio` is not migrated (the plan drops it)",
                "`users_search_name_idx` (search, name): `search` is not migrated (tsvector is \
                 derived data, left out unless listed under `columns` in the plan)",
            ]
        );

        // Seventeen columns are one too many.
        let mut t = table(
            "wide",
            wide.iter()
                .map(|c| column(c, PgType::Int4, false))
                .chain([column("id", PgType::Int4, false)])
                .collect(),
            &["id"],
        );
        let columns: Vec<&str> = wide.iter().map(String::as_str).collect();
        t.indexes = vec![index("wide_idx", &columns), index("wide_16_idx", &columns[..16])];
        let wide = indexes_of(&Catalog { tables: vec![t] }, &[], "wide");
        assert_eq!(wide.carried.len(), 1);
        assert_eq!(wide.carried[0].fields.len(), 16);
        assert_eq!(wide.carried[0].name.len(), MAX_IDENTIFIER_LEN, "{}", wide.carried[0].name);
        assert_eq!(
            wide.notes,
            [format!(
                "`wide_idx` ({}): 17 fields; a Convex index holds at most 16",
                columns.join(", ")
            )]
        );
    }

    #[test]
    fn a_legacy_id_kept_as_a_field_is_indexed_like_any_field() {
        let catalog = catalog(vec![index("users_email_id_idx", &["email", "id"])], vec![]);
        let plan = "[tables.\"public.users\".columns.id]\nfield = \"userNumber\"\n";
        let users = indexes_of(&catalog, &[plan], "users");
        assert_eq!(
            carried(&users),
            [entry("by_email_and_userNumber", &["email", "userNumber"], false)]
        );
    }

    #[test]
    fn composite_references_map_their_columns_side_by_side() {
        let mut orgs = table(
            "members",
            vec![column("org_id", PgType::Int4, false), column("user_id", PgType::Int4, false)],
            &["org_id", "user_id"],
        );
        orgs.indexes = vec![pkey("members", &["org_id", "user_id"])];
        let mut grants = table(
            "grants",
            vec![
                column("id", PgType::Int4, false),
                column("user_id", PgType::Int4, false),
                column("org_id", PgType::Int4, false),
                column("role", PgType::Text, false),
            ],
            &["id"],
        );
        grants.foreign_keys.push(fk(
            "grants_member_fkey",
            &["user_id", "org_id"],
            "members",
            &["user_id", "org_id"],
        ));
        grants.indexes = vec![
            unique(index("grants_member_role_key", &["user_id", "org_id", "role"])),
            index("grants_org_role_user_idx", &["org_id", "role", "user_id"]),
        ];
        let catalog = Catalog { tables: vec![grants, orgs] };
        let grants = indexes_of(&catalog, &[], "grants");
        assert_eq!(
            carried(&grants),
            [entry("by_membersId_and_role", &["membersId", "role"], true)]
        );
        assert_eq!(
            grants.notes,
            ["`grants_org_role_user_idx` (org_id, role, user_id): `org_id` belongs to the \
              reference `membersId`, whose columns the index does not hold side by side"]
        );
        assert_eq!(grants.unique[0].fields, ["membersId", "role"]);
    }

    #[test]
    fn names_stay_valid_and_unique() {
        let taken: BTreeSet<String> =
            ["by_id", "by_creation_time", "by_legacy_id", "by_a"].map(String::from).into();
        assert_eq!(index_name(&["id".into()], &taken), "by_id_2");
        assert_eq!(index_name(&["a".into()], &taken), "by_a_2");
        assert_eq!(index_name(&["a".into(), "b".into()], &taken), "by_a_and_b");
        let long = "x".repeat(40);
        let name = index_name(&[long.clone(), long.clone()], &taken);
        assert_eq!(name.len(), MAX_IDENTIFIER_LEN);
        let mut taken = taken;
        taken.insert(name.clone());
        let second = index_name(&[long.clone(), long], &taken);
        assert!(second.ends_with("_2") && second.len() == MAX_IDENTIFIER_LEN, "{second}");

        // A field named `legacy_id` under snake_case does not take `by_legacy_id`.
        let mut t = table(
            "things",
            vec![column("id", PgType::Int4, false), column("legacy_id", PgType::Text, false)],
            &["id"],
        );
        t.indexes = vec![index("things_legacy_idx", &["legacy_id"])];
        let indexes = indexes_of(
            &Catalog { tables: vec![t] },
            &["[defaults]\nnaming = \"snake_case\"\n"],
            "things",
        );
        assert_eq!(carried(&indexes), [entry("by_legacy_id_2", &["legacy_id"], false)]);
    }

    #[test]
    fn over_the_limit_unique_and_reference_indexes_are_kept_first() {
        let mut columns =
            vec![column("id", PgType::Int4, false), column("owner", PgType::Int4, false)];
        columns.extend((0..40).map(|i| column(&format!("c{i}"), PgType::Int4, false)));
        let mut t = table("many", columns, &["id"]);
        t.foreign_keys.push(fk("many_owner_fkey", &["owner"], "many", &["id"]));
        t.indexes =
            (0..40).map(|i| index(&format!("many_c{i:02}_idx"), &[&format!("c{i}")])).collect();
        t.indexes.push(unique(index("many_z_key", &["c39"])));
        let indexes = indexes_of(&Catalog { tables: vec![t] }, &[], "many");
        assert_eq!(indexes.carried.len(), MAX_INDEXES_PER_TABLE - 1);
        let names: Vec<&str> = indexes.carried.iter().map(|i| i.name.as_str()).collect();
        assert!(names.contains(&"by_c39") && names.contains(&"by_owner"), "{names:?}");
        assert!(indexes.carried.iter().find(|i| i.name == "by_c39").unwrap().unique);
        assert_eq!(indexes.notes.len(), 10, "{:#?}", indexes.notes);
        assert!(
            indexes.notes[0].starts_with("`many_c29_idx`: over Convex's limit of 32 indexes"),
            "{:?}",
            indexes.notes
        );
    }

    #[test]
    fn a_unique_key_with_nulls_not_distinct_says_so_and_one_holding_the_legacy_id_is_left_to_it() {
        let catalog = catalog(
            vec![
                Index { nulls_not_distinct: true, ..unique(index("users_name_key", &["name"])) },
                unique(index("users_email_id_key", &["email", "id"])),
            ],
            vec![],
        );
        let users = indexes_of(&catalog, &[], "users");
        assert_eq!(users.unique.len(), 1, "{:?}", users.unique);
        assert!(users.unique[0].nulls_not_distinct);
        assert_eq!(users.unique[0].fields, ["name"]);
    }

    #[test]
    fn indexes_of_a_merged_table_are_noted_on_the_target() {
        let mut settings = table(
            "user_settings",
            vec![column("user_id", PgType::Int8, false), column("theme", PgType::Text, false)],
            &["user_id"],
        );
        settings.foreign_keys.push(fk("settings_user_fkey", &["user_id"], "users", &["id"]));
        settings.indexes =
            vec![pkey("user_settings", &["user_id"]), index("user_settings_theme_idx", &["theme"])];
        let mut catalog = catalog(vec![], vec![]);
        catalog.tables.push(settings);
        let plan = "[tables.\"public.user_settings\"]\nmerge_into = \"public.users\"\n";
        let users = indexes_of(&catalog, &[plan], "users");
        assert_eq!(
            users.notes,
            ["`user_settings_theme_idx` (theme) of `public.user_settings`: that table is merged \
              into this one, and its indexes are not carried over"]
        );
        let _ = TableName::new("public", "users");
    }
}
