//! One raw row → one Convex document (or the reason it cannot be one), following a
//! [`TablePlan`]. Pure: lookups of parents and merged rows come in as data.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value as Raw};

use super::convert::{self, ConvertError};
use super::row::{Row, RowShape};
use crate::convex::{Document, Value, rules};
use crate::plan::{
    Condition, Conversion, FieldPlan, FileColumnPlan, NullPolicy, OrphanPolicy, ReferencePlan,
    RowFilter, TablePlan,
};

/// What became of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Document(Transformed),
    /// A filter excluded it.
    Filtered,
    /// A reference's parent (or a file column's object) is missing and its policy is `drop`:
    /// the reference's index in the table plan, or the number of references plus the file
    /// column's index.
    Dropped(usize),
    Rejected(Rejection),
}

/// A document, with its references still in legacy form for import to resolve.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformed {
    pub legacy_id: String,
    pub document: Document,
    /// (index into the table plan's `references`, the parent's legacy id).
    pub references: Vec<(usize, String)>,
    /// (index into the table plan's `files`, the object's key `<bucket>/<path>`).
    pub files: Vec<(usize, String)>,
    /// References that found no parent, and file columns that named no object, set to null or
    /// kept as the source value, as their orphan policy says.
    pub orphans: u32,
    /// The format of the password hash the row carried, for a table an auth preset shapes.
    pub hash_format: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The Convex field (or column) the reason concerns, with a path inside it.
    pub field: String,
    pub reason: String,
    /// The row's key columns and their raw values, to find it again.
    pub key: Map<String, Raw>,
}

fn rejection(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
    Rejection { field: field.into(), reason: reason.into(), key: Map::new() }
}

fn reject(field: impl Into<String>, reason: impl Into<String>) -> Outcome {
    Outcome::Rejected(rejection(field, reason))
}

/// The values of `columns` in `row`; a value too deep to parse is kept as its JSON text.
pub fn key_of(row: &Row<'_>, columns: &[String]) -> Map<String, Raw> {
    columns
        .iter()
        .map(|c| (c.clone(), row.value(c).unwrap_or_else(|_| Raw::String(row.text(c).into()))))
        .collect()
}

/// The legacy ids of the parent rows a reference may point at. Plan resolution makes
/// references only to the parent's legacy id columns, in their order, so a child's key is in
/// the same form as the parent's legacy id (or, for values Postgres prints in several ways, the
/// same canonical form: `super::keys`).
pub use super::keys::ParentKeys;
use super::keys::{KeyForm, write_canonical_key};

/// Fields contributed by merged tables, by the target's legacy id.
pub type MergedFields = HashMap<String, MergedEntry>;

/// What merged tables add to one target document, and the rows it came from.
#[derive(Debug, Default)]
pub struct MergedEntry {
    pub fields: Vec<(String, Value)>,
    /// Per contributing row: the index of its merge in the table plan, its raw line and key.
    pub rows: Vec<MergedRow>,
    /// Set when a written document took these fields; rows of an entry no document took were
    /// merged into nothing, and are rejected rather than counted as merged.
    pub taken: AtomicBool,
}

#[derive(Debug)]
pub struct MergedRow {
    pub merge: usize,
    pub line: u64,
    pub key: Map<String, Raw>,
}

/// A key's and fields' columns, worked out once per table: where they sit in the raw rows (so
/// that each row is read by position instead of by name) and what a NULL becomes.
pub struct Columns {
    pub key: Vec<Option<usize>>,
    pub fields: Vec<Option<usize>>,
    /// Per field: its default converted, for the rows where the column is NULL.
    pub defaults: Vec<Option<Result<Value, ConvertError>>>,
}

impl Columns {
    pub fn new(shape: &RowShape, key: &[String], fields: &[FieldPlan]) -> Self {
        Columns {
            key: shape.positions(key.iter().map(String::as_str)),
            fields: shape.positions(fields.iter().map(|f| f.column.as_str())),
            defaults: fields
                .iter()
                .map(|f| f.default.clone().map(|d| convert::convert(&f.conversion, d)))
                .collect(),
        }
    }
}

/// Everything a table's rows are checked against.
pub struct Lookups<'a> {
    /// Per reference (same order as `TablePlan::references`): the parent's keys.
    pub parents: Vec<&'a ParentKeys>,
    /// Per reference: the child's key forms when its key is matched by canonical form (values
    /// Postgres prints in several ways); `None` or absent: by the printed key.
    pub forms: Vec<Option<Vec<KeyForm>>>,
    pub merged: &'a MergedFields,
    /// The table's legacy id forms when `merged` is keyed by canonical key (`super::keys`).
    pub merged_forms: Option<Vec<KeyForm>>,
    /// The objects `storage.objects` lists, by key (`<bucket>/<path>`), for file columns;
    /// empty when no table has one.
    pub objects: &'a StorageObjects,
}

/// The keys (`<bucket>/<path>`) of the objects of `storage.objects`.
pub type StorageObjects = rustc_hash::FxHashSet<String>;

/// The legacy id of a row: one column's string form, or a compact JSON array of them.
/// `positions` are `columns`' positions ([`Columns::key`]).
pub fn legacy_id(
    row: &Row<'_>,
    columns: &[String],
    positions: &[Option<usize>],
) -> Result<String, Rejection> {
    let mut forms = Vec::with_capacity(columns.len());
    for (column, &position) in columns.iter().zip(positions) {
        match row.text_at(position) {
            "null" => {
                return Err(rejection(
                    column.clone(),
                    format!("legacy id column `{column}` is null"),
                ));
            }
            text => forms.push(convert::string_form(text)),
        }
    }
    Ok(match <[String; 1]>::try_from(forms) {
        Ok([single]) => single,
        Err(forms) => serde_json::to_string(&forms).expect("strings serialize"),
    })
}

/// Whether every filter holds for the row.
pub fn passes(row: &Row<'_>, filters: &[RowFilter]) -> bool {
    failing_filter(row, filters).is_none()
}

/// The index of the first filter `row` does not pass: the rule that leaves it out.
pub fn failing_filter(row: &Row<'_>, filters: &[RowFilter]) -> Option<usize> {
    filters.iter().position(|filter| {
        // Parsed only for comparisons. A value too deep to parse is not null and equals no
        // plan value.
        let value = || row.value(&filter.column).ok();
        let any_same = |options: &[Raw]| {
            value().is_some_and(|value| options.iter().any(|expected| same(&value, expected)))
        };
        let holds = match &filter.condition {
            Condition::IsNull => row.is_null(&filter.column),
            Condition::IsNotNull => !row.is_null(&filter.column),
            Condition::Equals(expected) => any_same(std::slice::from_ref(expected)),
            Condition::NotEquals(expected) => !any_same(std::slice::from_ref(expected)),
            Condition::In(options) => any_same(options),
        };
        !holds
    })
}

/// Equality of a raw value and a plan value: bigint and numeric are digit strings in the raw
/// form, so a plan number also matches the string of the same number.
fn same(raw: &Raw, plan: &Raw) -> bool {
    match (raw, plan) {
        (Raw::String(text), Raw::Number(number)) => {
            text.parse::<f64>().ok().zip(number.as_f64()).is_some_and(|(a, b)| a == b)
        }
        _ => raw == plan,
    }
}

/// Converts the plain fields of a row into `document`; `columns` are `fields`' own.
pub fn convert_fields(
    row: &Row<'_>,
    fields: &[FieldPlan],
    columns: &Columns,
    nulls: NullPolicy,
    document: &mut Document,
) -> Result<(), Rejection> {
    for ((field, &position), default) in fields.iter().zip(&columns.fields).zip(&columns.defaults) {
        let text = row.text_at(position);
        let found = match field.path.as_slice() {
            [] => None,
            path => Some(convert::json_at_path(text, path).map_err(|e| {
                rejection(&field.field, format!("json column `{}`: {}", field.column, e.reason))
            })?),
        };
        let text = match &found {
            None => text,
            Some(None) => "null",
            Some(Some(inner)) => inner,
        };
        let converted = match (text, default) {
            ("null", Some(default)) => default.clone(),
            ("null", None) => {
                if nulls == NullPolicy::Null {
                    document.insert(field.field.clone(), Value::Null);
                }
                continue;
            }
            (text, _) => {
                let converted = convert::convert_text(&field.conversion, text);
                if converted.is_ok()
                    && let Some(duplicate) = convert::duplicate_json_key(&field.conversion, text)
                {
                    return Err(duplicate_key(field, duplicate));
                }
                converted
            }
        };
        let converted = converted.map_err(|mut e| {
            if timestamp_ms(&field.conversion) {
                // The reason names the column: a timestamp's field name may not tell it.
                e.reason = format!("column `{}`: {}", field.column, e.reason);
            }
            at(&field.field, e)
        })?;
        document.insert(field.field.clone(), converted);
    }
    Ok(())
}

fn timestamp_ms(conversion: &Conversion) -> bool {
    match conversion {
        Conversion::TimestampMs { .. } => true,
        Conversion::Array(element) => timestamp_ms(element),
        _ => false,
    }
}

/// A json value whose object repeats a key: keeping one value would lose the others.
fn duplicate_key(field: &FieldPlan, duplicate: convert::DuplicateKey) -> Rejection {
    rejection(
        format!("{}{}", field.field, duplicate.path),
        format!(
            "json column `{}` has key `{}` {} times in one object: a Convex object holds one \
             value per key, so the others would be lost (make the keys unique in the source; \
             `jsonb` keeps only the last)",
            field.column, duplicate.key, duplicate.times
        ),
    )
}

fn at(field: &str, error: ConvertError) -> Rejection {
    rejection(format!("{field}{}", error.path), error.reason)
}

/// Transforms one row; a rejection carries the row's legacy id columns.
pub fn transform_row(
    row: &Row<'_>,
    plan: &TablePlan,
    columns: &Columns,
    lookups: &Lookups<'_>,
) -> Outcome {
    match transform_fields(row, plan, columns, lookups) {
        Outcome::Rejected(mut rejection) => {
            rejection.key = key_of(row, &plan.legacy_id.columns);
            Outcome::Rejected(rejection)
        }
        outcome => outcome,
    }
}

fn transform_fields(
    row: &Row<'_>,
    plan: &TablePlan,
    columns: &Columns,
    lookups: &Lookups<'_>,
) -> Outcome {
    if !passes(row, &plan.filters) {
        return Outcome::Filtered;
    }
    let legacy_id = match legacy_id(row, &plan.legacy_id.columns, &columns.key) {
        Ok(id) => id,
        Err(rejection) => return Outcome::Rejected(rejection),
    };
    let mut document = Document::new();
    document.insert(plan.legacy_id.field.clone(), Value::String(legacy_id.clone()));
    let mut references = Vec::new();
    let mut orphans = 0;
    for (index, (reference, parents)) in plan.references.iter().zip(&lookups.parents).enumerate() {
        let forms = lookups.forms.get(index).and_then(Option::as_deref);
        match resolve_reference(row, reference, parents, forms) {
            // A key with a NULL column references nothing: the field is absent, or null under
            // `nulls = "null"`, as the schema says (`v.union(v.id(..), v.null())`).
            Reference::Absent => {
                if plan.nulls == NullPolicy::Null {
                    document.insert(reference.field.clone(), Value::Null);
                }
            }
            Reference::Parent(parent) => references.push((index, parent)),
            Reference::Orphan(key) => match reference.orphans {
                OrphanPolicy::Fail => {
                    return reject(
                        &reference.field,
                        format!(
                            "`{}` = {key} has no row in `{}` (orphan policy `fail`)",
                            reference.columns.join("`, `"),
                            reference.parent
                        ),
                    );
                }
                OrphanPolicy::Null => {
                    orphans += 1;
                    if plan.nulls == NullPolicy::Null {
                        document.insert(reference.field.clone(), Value::Null);
                    }
                }
                OrphanPolicy::Drop => return Outcome::Dropped(index),
                OrphanPolicy::KeepLegacy => {
                    orphans += 1;
                    document.insert(reference.field.clone(), Value::String(key));
                }
            },
        }
    }
    let mut files = Vec::new();
    for (index, file) in plan.files.iter().enumerate() {
        match resolve_file(row, file, lookups.objects) {
            Reference::Absent => {
                if plan.nulls == NullPolicy::Null {
                    document.insert(file.field.clone(), Value::Null);
                }
            }
            Reference::Parent(key) => files.push((index, key)),
            Reference::Orphan(why) => match file.orphans {
                OrphanPolicy::Fail => {
                    return reject(&file.field, format!("{why} (orphan policy `fail`)"));
                }
                OrphanPolicy::Null => {
                    orphans += 1;
                    if plan.nulls == NullPolicy::Null {
                        document.insert(file.field.clone(), Value::Null);
                    }
                }
                OrphanPolicy::Drop => return Outcome::Dropped(plan.references.len() + index),
                OrphanPolicy::KeepLegacy => {
                    orphans += 1;
                    let text = convert::string_form(row.text(&file.column));
                    document.insert(file.field.clone(), Value::String(text));
                }
            },
        }
    }
    if let Err(rejection) = convert_fields(row, &plan.fields, columns, plan.nulls, &mut document) {
        return Outcome::Rejected(rejection);
    }
    let merged = merged_entry(row, columns, lookups, &legacy_id);
    if let Some(merged) = merged {
        for (field, value) in &merged.fields {
            document.insert(field.clone(), value.clone());
        }
    }
    let mut hash_format = None;
    if let Some(shape) = plan.component.as_ref().and_then(|c| c.shape) {
        match super::auth::apply(shape, &plan.legacy_id.field, &mut document) {
            Ok(format) => hash_format = format,
            Err(error) => return reject(error.field, error.reason),
        }
    }
    if let Err(violation) = rules::check_document(&document) {
        return reject(violation.path.clone(), violation.rule.to_string());
    }
    if let Some(merged) = merged {
        merged.taken.store(true, Ordering::Relaxed);
    }
    Outcome::Document(Transformed { legacy_id, document, references, files, orphans, hash_format })
}

/// What merged tables add to the document of `row`, whose legacy id is `legacy_id`: looked up
/// by that id, or by the row's canonical key when merged rows are keyed so.
pub fn merged_entry<'a>(
    row: &Row<'_>,
    columns: &Columns,
    lookups: &Lookups<'a>,
    legacy_id: &str,
) -> Option<&'a MergedEntry> {
    let key = match &lookups.merged_forms {
        Some(forms) => {
            let mut canonical = String::new();
            let texts = columns.key.iter().map(|&p| row.text_at(p));
            write_canonical_key(texts, forms, &mut canonical);
            Cow::Owned(canonical)
        }
        None => Cow::Borrowed(legacy_id),
    };
    lookups.merged.get(key.as_ref())
}

enum Reference {
    /// Every column is NULL: no reference.
    Absent,
    /// The parent's legacy id (a file column's: the object's key).
    Parent(String),
    /// The key that found no parent (a file column's: why the value names no object).
    Orphan(String),
}

/// The object a file column's value names, by its key, when `storage.objects` lists it.
fn resolve_file(row: &Row<'_>, file: &FileColumnPlan, objects: &StorageObjects) -> Reference {
    let text = row.text(&file.column);
    if text == "null" {
        return Reference::Absent;
    }
    let value = convert::string_form(text);
    let shown = serde_json::to_string(&value).expect("a string serializes");
    match super::storage_path::object_key(&value, file.form, file.bucket.as_deref()) {
        Ok(key) if objects.contains(&key) => Reference::Parent(key),
        Ok(key) => Reference::Orphan(format!(
            "`{}` = {shown} names the object `{key}`, which `storage.objects` does not list",
            file.column
        )),
        Err(why) => Reference::Orphan(format!(
            "`{}` = {shown} names no object of `storage.objects`: {why}",
            file.column
        )),
    }
}

fn resolve_reference(
    row: &Row<'_>,
    reference: &ReferencePlan,
    parents: &ParentKeys,
    forms: Option<&[KeyForm]>,
) -> Reference {
    // SQL's MATCH SIMPLE: a key with any NULL column references nothing.
    if reference.columns.iter().any(|c| row.is_null(c)) {
        return Reference::Absent;
    }
    let texts: Vec<&str> = reference.columns.iter().map(|c| row.text(c)).collect();
    let key = reference_key(&texts);
    match forms {
        // The parent's legacy id as its document has it, which may print differently.
        Some(forms) => {
            let mut canonical = String::new();
            write_canonical_key(texts.iter().copied(), forms, &mut canonical);
            match parents.find(&canonical) {
                Some(parent) => Reference::Parent(parent.to_owned()),
                None => Reference::Orphan(key),
            }
        }
        None if parents.contains(&key) => Reference::Parent(key),
        None => Reference::Orphan(key),
    }
}

/// The lookup key of referenced values (JSON texts): a legacy id in the same form as
/// [`legacy_id`].
pub fn reference_key(texts: &[&str]) -> String {
    match texts {
        [single] => convert::string_form(single),
        several => serde_json::to_string(
            &several.iter().map(|t| convert::string_form(t)).collect::<Vec<_>>(),
        )
        .expect("strings serialize"),
    }
}

/// Converts a merged table's row into the fields it adds to its target document; the key is the
/// target's legacy id.
pub fn merged_row(
    row: &Row<'_>,
    on: &[String],
    fields: &[FieldPlan],
    columns: &Columns,
    nulls: NullPolicy,
) -> Result<(String, Vec<(String, Value)>), Rejection> {
    let with_key = |mut r: Rejection| {
        r.key = key_of(row, on);
        r
    };
    let key = legacy_id(row, on, &columns.key).map_err(with_key)?;
    let mut document = Document::new();
    convert_fields(row, fields, columns, nulls, &mut document).map_err(with_key)?;
    Ok((key, document.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalog::TableName;
    use crate::plan::{Conversion, LegacyId, MergePlan};
    use crate::transform::row::RowShape;

    /// Runs `each` on `value` as a parsed raw row, with the shape it was read with.
    fn with_row<T>(value: Raw, each: impl FnOnce(&Row<'_>, &RowShape) -> T) -> T {
        let object = value.as_object().expect("an object");
        let shape = RowShape::new(object.keys().map(String::as_str));
        let line = serde_json::to_vec(&value).unwrap();
        each(&Row::parse(&line, &shape).unwrap(), &shape)
    }

    fn field(column: &str, name: &str, conversion: Conversion, optional: bool) -> FieldPlan {
        let (column, field) = (column.into(), name.into());
        FieldPlan { column, field, conversion, default: None, optional, path: Vec::new() }
    }

    fn posts_plan(orphans: OrphanPolicy) -> TablePlan {
        TablePlan {
            source: TableName::new("public", "posts"),
            target: "posts".into(),
            legacy_id: LegacyId { field: "legacyId".into(), columns: vec!["id".into()] },
            fields: vec![
                field("title", "title", Conversion::String, false),
                field("score", "score", Conversion::NumericAsCents, true),
            ],
            references: vec![ReferencePlan {
                constraint: "posts_author_id_fkey".into(),
                columns: vec!["author_id".into()],
                field: "authorId".into(),
                parent: TableName::new("public", "users"),
                parent_target: "users".into(),
                orphans,
                optional: true,
            }],
            files: Vec::new(),
            filters: vec![RowFilter {
                column: "status".into(),
                condition: Condition::NotEquals(json!("deleted")),
            }],
            merges: Vec::<MergePlan>::new(),
            nulls: NullPolicy::Omit,
            indexes: Default::default(),
            component: None,
        }
    }

    fn parents() -> ParentKeys {
        ParentKeys::from_iter(["7".to_owned()])
    }

    fn run(plan: &TablePlan, value: Raw) -> Outcome {
        let parents = parents();
        let merged = MergedFields::new();
        let objects = StorageObjects::from_iter(["avatars/1.png".to_owned()]);
        let lookups = Lookups {
            parents: vec![&parents],
            forms: Vec::new(),
            merged: &merged,
            merged_forms: None,
            objects: &objects,
        };
        with_row(value, |row, shape| {
            let columns = Columns::new(shape, &plan.legacy_id.columns, &plan.fields);
            transform_row(row, plan, &columns, &lookups)
        })
    }

    #[test]
    fn a_row_becomes_a_document_with_its_reference_in_legacy_form() {
        let outcome = run(
            &posts_plan(OrphanPolicy::Fail),
            json!({"id": "1", "title": "Hi", "score": null, "author_id": "7", "status": "ok"}),
        );
        let Outcome::Document(doc) = outcome else { panic!("{outcome:?}") };
        assert_eq!(doc.legacy_id, "1");
        // The plan's first reference, `authorId`.
        assert_eq!(doc.references, vec![(0, "7".to_owned())]);
        assert_eq!(doc.document.keys().collect::<Vec<_>>(), ["legacyId", "title"]);
    }

    #[test]
    fn orphans_follow_their_policy() {
        let orphan = json!({"id": "1", "title": "Hi", "author_id": "99", "status": "ok"});
        let Outcome::Rejected(rejection) = run(&posts_plan(OrphanPolicy::Fail), orphan.clone())
        else {
            panic!("fail policy must reject")
        };
        assert_eq!(rejection.field, "authorId");
        assert!(rejection.reason.contains("`author_id` = 99 has no row in `public.users`"));
        assert_eq!(run(&posts_plan(OrphanPolicy::Drop), orphan.clone()), Outcome::Dropped(0));
        let Outcome::Document(kept) = run(&posts_plan(OrphanPolicy::KeepLegacy), orphan.clone())
        else {
            panic!()
        };
        assert_eq!(kept.document.get("authorId"), Some(&Value::String("99".into())));
        let Outcome::Document(nulled) = run(&posts_plan(OrphanPolicy::Null), orphan) else {
            panic!()
        };
        assert!(!nulled.document.contains_key("authorId") && nulled.references.is_empty());
    }

    /// `posts` with an avatar column of plain paths in bucket `avatars`, whose only object is
    /// `1.png`.
    fn avatar_plan(orphans: OrphanPolicy, nulls: NullPolicy) -> TablePlan {
        let mut plan = posts_plan(OrphanPolicy::Fail);
        plan.files = vec![FileColumnPlan {
            column: "avatar_url".into(),
            field: "avatar".into(),
            bucket: Some("avatars".into()),
            form: crate::plan::PathForm::Path,
            orphans,
            optional: true,
        }];
        plan.nulls = nulls;
        plan
    }

    #[test]
    fn a_file_column_names_its_object_by_key_and_missing_objects_follow_the_orphan_policy() {
        let row = |avatar: Raw| json!({"id": "1", "title": "Hi", "avatar_url": avatar});
        let Outcome::Document(found) =
            run(&avatar_plan(OrphanPolicy::Fail, NullPolicy::Omit), row(json!("1.png")))
        else {
            panic!("the object exists")
        };
        assert_eq!(found.files, vec![(0, "avatars/1.png".to_owned())]);
        assert!(!found.document.contains_key("avatar") && found.orphans == 0);

        let missing = row(json!("9.png"));
        let Outcome::Rejected(rejection) =
            run(&avatar_plan(OrphanPolicy::Fail, NullPolicy::Omit), missing.clone())
        else {
            panic!("fail policy must reject")
        };
        assert_eq!(rejection.field, "avatar");
        assert_eq!(
            rejection.reason,
            "`avatar_url` = \"9.png\" names the object `avatars/9.png`, which `storage.objects` \
             does not list (orphan policy `fail`)"
        );
        assert_eq!(rejection.key.get("id"), Some(&json!("1")));
        assert_eq!(
            run(&avatar_plan(OrphanPolicy::Drop, NullPolicy::Omit), missing.clone()),
            Outcome::Dropped(1),
            "after the table's one reference"
        );
        let Outcome::Document(kept) =
            run(&avatar_plan(OrphanPolicy::KeepLegacy, NullPolicy::Omit), missing.clone())
        else {
            panic!()
        };
        assert_eq!(kept.document.get("avatar"), Some(&Value::String("9.png".into())));
        assert!(kept.files.is_empty() && kept.orphans == 1);
        let Outcome::Document(nulled) =
            run(&avatar_plan(OrphanPolicy::Null, NullPolicy::Null), missing)
        else {
            panic!()
        };
        assert_eq!(nulled.document.get("avatar"), Some(&Value::Null));
        assert!(nulled.files.is_empty() && nulled.orphans == 1);

        // SQL NULL names no object: absent, and no orphan.
        let Outcome::Document(none) =
            run(&avatar_plan(OrphanPolicy::Fail, NullPolicy::Omit), row(Raw::Null))
        else {
            panic!()
        };
        assert!(!none.document.contains_key("avatar") && none.files.is_empty());
        assert_eq!(none.orphans, 0);
    }

    #[test]
    fn filters_conversions_and_rules_decide_the_outcome() {
        let plan = posts_plan(OrphanPolicy::Fail);
        assert_eq!(
            run(&plan, json!({"id": "1", "title": "x", "status": "deleted"})),
            Outcome::Filtered
        );
        let Outcome::Rejected(bad) =
            run(&plan, json!({"id": "1", "title": "x", "score": "0.001", "status": "ok"}))
        else {
            panic!()
        };
        assert_eq!(bad.field, "score");
        let Outcome::Rejected(no_id) = run(&plan, json!({"id": null, "title": "x"})) else {
            panic!()
        };
        assert!(no_id.reason.contains("legacy id column `id` is null"));
        let huge = "x".repeat(1 << 20);
        let Outcome::Rejected(too_big) = run(&plan, json!({"id": "1", "title": huge})) else {
            panic!()
        };
        assert!(too_big.reason.contains("MiB") || too_big.reason.contains("size"), "{too_big:?}");
    }

    #[test]
    fn composite_legacy_ids_are_compact_json_arrays() {
        let id = with_row(json!({"org": "acme", "n": 42}), |r, shape| {
            let columns = ["org".to_owned(), "n".to_owned()];
            legacy_id(r, &columns, &shape.positions(columns.iter().map(String::as_str)))
        });
        assert_eq!(id.unwrap(), r#"["acme","42"]"#);
        assert_eq!(reference_key(&[r#""acme""#, "42"]), r#"["acme","42"]"#);
    }

    #[test]
    fn plan_numbers_match_digit_strings_in_filters() {
        let filters =
            vec![RowFilter { column: "n".into(), condition: Condition::In(vec![json!(5)]) }];
        assert!(with_row(json!({"n": "5"}), |r, _| passes(r, &filters)));
        assert!(!with_row(json!({"n": "6"}), |r, _| passes(r, &filters)));
    }
}
