//! Columns holding Supabase Storage object paths (`policy = "file"` in a `columns` entry): the
//! checks on the entry and the [`FileColumnPlan`] it gives (docs/files.md, "Columns that name
//! files").
//!
//! Choices made here: the column must be text, varchar or citext (not an array); the plan must
//! move files (`[files]`), since the field holds the id of a file import uploads; `bucket` is
//! required for plain paths and optional for the other forms (without it any bucket is taken);
//! `orphans` defaults to `[defaults] orphans`, as for references; `default`, `json_keys` and
//! `trim` do not apply; `bucket`, `form` and `orphans` on a column of another policy are errors.

use super::column_path;
use crate::catalog::{Column, PgType, Table};
use crate::plan::error::{PlanError, PlanErrorKind};
use crate::plan::file::{At, ColumnEntry, Policy};
use crate::plan::model::{FileColumnPlan, OrphanPolicy, PathForm};

/// The file column `entry` makes of `column` under the field name `field`, or `None` when its
/// policy is not `file` (and it says nothing only a file column may say).
pub(super) fn file_column(
    table: &Table,
    column: &Column,
    entry: &ColumnEntry,
    field: String,
    default_orphans: OrphanPolicy,
    moves_files: bool,
) -> Result<Option<FileColumnPlan>, PlanError> {
    let path = column_path(table, &column.name);
    let Some(policy) = entry.policy.as_ref().filter(|p| p.value == Policy::File) else {
        let only_files = [
            entry.bucket.as_ref().map(|b| (&b.at, &b.path, "bucket")),
            entry.form.as_ref().map(|f| (&f.at, &f.path, "form")),
            entry.orphans.as_ref().map(|o| (&o.at, &o.path, "orphans")),
        ];
        if let Some((at, key_path, key)) = only_files.into_iter().flatten().next() {
            return Err(invalid(
                at,
                key_path,
                format!(
                    "`{key}` applies to a column under `policy = \"file\"` only, not to `{path}`"
                ),
                "set `policy = \"file\"` when the column names Supabase Storage objects, or remove \
                 the key",
            ));
        }
        return Ok(None);
    };
    let text = matches!(column.ty, PgType::Text | PgType::Varchar | PgType::Citext);
    if column.array || !text {
        return Err(invalid(
            &policy.at,
            &policy.path,
            format!(
                "column `{path}` of type `{}` cannot name Supabase Storage objects",
                column.sql_type
            ),
            "`policy = \"file\"` takes a text, varchar or citext column holding one path or URL",
        ));
    }
    if !moves_files {
        return Err(invalid(
            &policy.at,
            &policy.path,
            format!(
                "column `{path}` names files (`policy = \"file\"`), but the plan moves no files"
            ),
            "add `[files]` with the `source` of the objects' bytes (docs/files.md): the field \
             holds the id of a file import uploads",
        ));
    }
    let not_for_files = [
        entry.default.as_ref().map(|d| (&d.at, &d.path, "default")),
        entry.json_keys.as_ref().map(|k| (&k.at, &k.path, "json_keys")),
        entry.trim.as_ref().map(|t| (&t.at, &t.path, "trim")),
    ];
    if let Some((at, key_path, key)) = not_for_files.into_iter().flatten().next() {
        return Err(invalid(
            at,
            key_path,
            format!("`{key}` does not apply to column `{path}` under `policy = \"file\"`"),
            "a file column holds a file's id, or nothing: what a missing object becomes is its \
             `orphans`",
        ));
    }
    let form = entry.form.as_ref().map_or(PathForm::Path, |f| f.value);
    let bucket = match &entry.bucket {
        Some(bucket) => Some(checked_bucket(bucket)?),
        None if form == PathForm::Path => {
            return Err(invalid(
                &policy.at,
                &policy.path,
                format!("column `{path}` holds paths inside a bucket, but names no bucket"),
                "add `bucket = \"<bucket>\"` (or `form = \"bucket/path\"` or `form = \"url\"` when \
                 the values name their bucket)",
            ));
        }
        None => None,
    };
    Ok(Some(FileColumnPlan {
        column: column.name.clone(),
        field,
        bucket,
        form,
        orphans: entry.orphans.as_ref().map_or(default_orphans, |o| o.value),
        optional: column.nullable,
    }))
}

/// A bucket name as Supabase Storage allows it: not empty, no `/`.
fn checked_bucket(bucket: &At<String>) -> Result<String, PlanError> {
    if bucket.value.is_empty() || bucket.value.contains('/') {
        return Err(invalid(
            &bucket.at,
            &bucket.path,
            format!("`{}` is not a bucket name", bucket.value),
            "a Supabase Storage bucket's name is not empty and holds no `/` (the bucket's `id` in \
             `storage.buckets`)",
        ));
    }
    Ok(bucket.value.clone())
}

fn invalid(
    at: &crate::plan::Location,
    path: &str,
    reason: String,
    hint: &'static str,
) -> PlanError {
    PlanError::from(PlanErrorKind::Invalid {
        at: at.clone(),
        path: path.to_owned(),
        reason,
        hint: Some(hint.into()),
    })
}
