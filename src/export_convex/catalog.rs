//! A Convex deployment's schema (as `SchemaDefinition.export()` writes it, which the dashboard
//! reads through the system query `_system/frontend/getSchemas`) → the [`Catalog`] every later
//! stage reads. Pure.
//!
//! Each table gets `_id` (text, the primary key, so that it becomes the legacy id) and
//! `_creationTime` (float8), then its fields in name order. A string field is `text`, a boolean
//! `bool`, a top-level `v.id("t")` a `text` foreign key to `t._id` (when `t` is exported too);
//! every other validator is a [`PgType::Convex`] field whose raw values keep Convex's encoding.

use serde_json::Value as Json;

use crate::catalog::{
    Catalog, Column, ForeignKey, Index, IndexKey, PgType, Table, TableKind, TableName,
};
use crate::convex::validator;

/// The schema name the deployment's own tables are listed under (`public.messages`), as a
/// Postgres database's default schema; a component's tables are listed under its name.
pub const APP_SCHEMA: &str = "public";

/// The catalog of the tables `schema` (the export's JSON) declares, under `schema_name`, for
/// which `selected` says yes. Errors name the table and field.
pub fn catalog(
    schema: &Json,
    schema_name: &str,
    selected: impl Fn(&TableName) -> bool,
) -> Result<Catalog, String> {
    let tables =
        schema.get("tables").and_then(Json::as_array).ok_or("the schema lists no `tables`")?;
    let mut names = Vec::new();
    for table in tables {
        let name = table.get("tableName").and_then(Json::as_str).ok_or("a table without a name")?;
        let name = TableName::new(schema_name, name);
        if selected(&name) {
            names.push((name, table));
        }
    }
    let exported: Vec<&str> = names.iter().map(|(n, _)| n.name.as_str()).collect();
    let mut out = Vec::new();
    for (name, table) in &names {
        out.push(
            table_of(name, table, &exported).map_err(|e| format!("table `{}`: {e}", name.name))?,
        );
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Catalog { tables: out })
}

fn table_of(name: &TableName, table: &Json, exported: &[&str]) -> Result<Table, String> {
    let document = table.get("documentType").ok_or("no `documentType`")?;
    let fields = match validator::kind(document) {
        Some("object") => document.get("value").and_then(Json::as_object).ok_or("no fields")?,
        // `v.any()` documents (a table without a validator): nothing to catalog.
        Some("any") => {
            return Err("the schema gives its documents no fields (`v.any()`); declare them in \
                        schema.ts to export it"
                .into());
        }
        other => return Err(format!("documents of type `{}`", other.unwrap_or("?"))),
    };
    let mut columns = vec![
        column("_id", "v.id", PgType::Text, false),
        column("_creationTime", "v.float64()", PgType::Float8, false),
    ];
    let mut foreign_keys = Vec::new();
    for (field, spec) in fields {
        let ty = spec.get("fieldType").ok_or_else(|| format!("field `{field}` has no type"))?;
        let optional = spec.get("optional").and_then(Json::as_bool).unwrap_or(false);
        let ts = validator::typescript(ty).map_err(|e| format!("field `{field}`: {e}"))?;
        let nullable = optional || accepts_null(ty);
        // `v.union(v.null(), v.string())` is a nullable string (Better Auth's optional fields).
        let ty = without_null(ty);
        let pg = match validator::kind(ty) {
            Some("string") => PgType::Text,
            Some("boolean") => PgType::Bool,
            Some("id") => {
                let parent = validator::id_table(ty).unwrap_or_default();
                if exported.contains(&parent) {
                    foreign_keys.push(ForeignKey {
                        name: format!("{}_{field}", name.name),
                        columns: vec![field.clone()],
                        references: TableName::new(&name.schema, parent),
                        referenced_columns: vec!["_id".into()],
                    });
                } else {
                    tracing::warn!(
                        "{}.{field} refers to `{parent}`, which is not exported: its ids are \
                         kept as strings",
                        name.name
                    );
                }
                PgType::Text
            }
            _ => PgType::Convex(Box::new(ty.clone())),
        };
        let sql_type = if validator::kind(ty) == Some("id") {
            format!(
                "v.id({})",
                serde_json::to_string(validator::id_table(ty).unwrap_or_default())
                    .unwrap_or_default()
            )
        } else {
            ts
        };
        columns.push(column(field, &sql_type, pg, nullable));
    }
    let indexes = table
        .get("indexes")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|index| {
            let name = index.get("indexDescriptor")?.as_str()?;
            let keys = index.get("fields")?.as_array()?;
            let keys: Option<Vec<IndexKey>> =
                keys.iter().map(|k| Some(IndexKey::Column(k.as_str()?.to_owned()))).collect();
            Some(Index {
                name: name.to_owned(),
                // A Convex index is ordered by its fields, as a btree is: init carries it over.
                method: "btree".into(),
                keys: keys?,
                unique: false,
                primary: false,
                nulls_not_distinct: false,
                predicate: None,
            })
        })
        .collect();
    Ok(Table {
        name: name.clone(),
        kind: TableKind::Table,
        columns,
        primary_key: vec!["_id".into()],
        unique_keys: vec![],
        foreign_keys,
        estimated_rows: None,
        partition_keys: None,
        indexes,
    })
}

/// The other member of a union of `v.null()` and one more validator; else `ty` itself.
fn without_null(ty: &Json) -> &Json {
    if validator::kind(ty) != Some("union") {
        return ty;
    }
    let members = ty.get("value").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
    let others: Vec<&Json> =
        members.iter().filter(|m| validator::kind(m) != Some("null")).collect();
    match others.as_slice() {
        [only] if others.len() < members.len() => only,
        _ => ty,
    }
}

/// `v.null()`, or a union with it.
fn accepts_null(ty: &Json) -> bool {
    match validator::kind(ty) {
        Some("null" | "any") => true,
        Some("union") => {
            ty.get("value").and_then(Json::as_array).is_some_and(|m| m.iter().any(accepts_null))
        }
        _ => false,
    }
}

fn column(name: &str, sql_type: &str, ty: PgType, nullable: bool) -> Column {
    Column {
        name: name.into(),
        sql_type: sql_type.into(),
        ty,
        array: false,
        domain: None,
        nullable,
        generated: false,
        nondeterministic_collation: None,
        citext_lowering: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_fields_and_id_references_become_the_catalog() {
        let schema = json!({"tables": [
            {"tableName": "users", "indexes": [{"indexDescriptor": "by_email", "fields": ["email"]}],
             "documentType": {"type": "object", "value": {
                "email": {"fieldType": {"type": "string"}, "optional": false},
                "score": {"fieldType": {"type": "bigint"}, "optional": true}}}},
            {"tableName": "posts", "indexes": [], "documentType": {"type": "object", "value": {
                "author": {"fieldType": {"type": "id", "tableName": "users"}, "optional": false},
                "editor": {"fieldType": {"type": "id", "tableName": "gone"}, "optional": false}}}}
        ]});
        let catalog = catalog(&schema, APP_SCHEMA, |_| true).unwrap();
        let names: Vec<_> = catalog.tables.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["public.posts", "public.users"]);
        let users = &catalog.tables[1];
        assert_eq!(users.primary_key, ["_id"]);
        let columns: Vec<_> = users.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns, ["_id", "_creationTime", "email", "score"]);
        assert_eq!(users.columns[3].ty, PgType::Convex(Box::new(json!({"type": "bigint"}))));
        assert!(users.columns[3].nullable && !users.columns[2].nullable);
        assert_eq!(users.indexes[0].columns().unwrap(), ["email"]);
        let posts = &catalog.tables[0];
        assert_eq!(posts.foreign_keys.len(), 1, "only references to exported tables");
        assert_eq!(posts.foreign_keys[0].references, TableName::new("public", "users"));
        assert_eq!(posts.columns[2].sql_type, r#"v.id("users")"#);

        let nullable = json!({"tables": [{"tableName": "t", "documentType": {"type": "object",
            "value": {"s": {"fieldType": {"type": "union", "value": [{"type": "null"},
                {"type": "string"}]}, "optional": true}}}}]});
        let t = &super::catalog(&nullable, "c", |_| true).unwrap().tables[0];
        assert_eq!((&t.columns[2].ty, t.columns[2].nullable), (&PgType::Text, true));

        let only_users = super::catalog(&schema, APP_SCHEMA, |t| t.name == "users").unwrap();
        assert_eq!(only_users.tables.len(), 1);
    }
}
