//! Catalog queries: which relations exist, which the user selected, and their columns, types,
//! keys and foreign keys. Runs inside the export's snapshot transaction, so the catalog and the
//! rows describe the same moment.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Client;

use super::ExportError;
use crate::catalog::{
    CitextLowering, Column, ForeignKey, Index, IndexKey, PartialForeignKey, PartitionKeys, PgType,
    Table, TableKind, TableName,
};
use crate::settings::TableSelector;

/// A relation found in the catalog, before its columns are read.
#[derive(Debug, Clone)]
struct Relation {
    oid: u32,
    name: TableName,
    kind: TableKind,
    is_partition: bool,
    estimated_rows: Option<u64>,
    can_select: bool,
}

/// Reads the catalog of the selected tables.
///
/// With no selectors: every table and partitioned table of `schemas` (partitions are read
/// through their parent). With selectors: exactly those relations, views included; a bare name
/// is looked up in `schemas`.
pub async fn introspect(
    client: &Client,
    schemas: &[String],
    selectors: &[TableSelector],
) -> Result<Vec<Table>, ExportError> {
    let relations = relations(client).await?;
    let selected = select(&relations, schemas, selectors)?;
    let denied: Vec<TableName> =
        selected.iter().filter(|r| !r.can_select).map(|r| r.name.clone()).collect();
    if !denied.is_empty() {
        return Err(ExportError::PermissionDenied { tables: denied, source: None });
    }
    let oids: Vec<u32> = selected.iter().map(|r| r.oid).collect();
    let types = TypeCatalog::load(client).await?;
    let mut columns = columns(client, &oids, &types).await?;
    let mut keys = keys(client, &oids).await?;
    let partitioned: Vec<u32> =
        selected.iter().filter(|r| r.kind == TableKind::Partitioned).map(|r| r.oid).collect();
    let mut partitions = partitions(client, &partitioned).await?;
    let mut indexes = indexes(client, &oids).await?;
    Ok(selected
        .into_iter()
        .map(|relation| {
            let mut keys = keys.remove(&relation.oid).unwrap_or_default();
            let partition_keys = partitions.remove(&relation.oid).and_then(|leaves| {
                attach_partition_keys(&relation.name, &mut keys.foreign, &leaves)
            });
            Table {
                name: relation.name,
                kind: relation.kind,
                columns: columns.remove(&relation.oid).unwrap_or_default(),
                primary_key: keys.primary,
                unique_keys: keys.unique,
                foreign_keys: keys.foreign,
                estimated_rows: relation.estimated_rows,
                partition_keys,
                indexes: indexes.remove(&relation.oid).unwrap_or_default(),
            }
        })
        .collect())
}

async fn relations(client: &Client) -> Result<Vec<Relation>, ExportError> {
    let rows = client
        .query(
            r"select c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relispartition,
                     case when c.relkind = 'p' then
                       (select case when bool_and(p.reltuples < 0) then -1
                                    else sum(greatest(p.reltuples, 0)) end::float8
                          from pg_partition_tree(c.oid) t join pg_class p on p.oid = t.relid
                         where t.isleaf)
                     else c.reltuples::float8 end,
                     has_table_privilege(c.oid, 'SELECT')
                from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where c.relkind in ('r', 'p', 'v', 'm', 'f')
                 and n.nspname not in ('pg_catalog', 'information_schema')
                 and n.nspname not like 'pg\_toast%' and n.nspname not like 'pg\_temp%'
               order by 2, 3",
            &[],
        )
        .await
        .map_err(ExportError::catalog)?;
    Ok(rows
        .iter()
        .map(|row| {
            let kind = match row.get::<_, String>(3).as_str() {
                "r" => TableKind::Table,
                "p" => TableKind::Partitioned,
                "v" => TableKind::View,
                "m" => TableKind::MaterializedView,
                _ => TableKind::Foreign,
            };
            let estimate: Option<f64> = row.get(5);
            Relation {
                oid: row.get(0),
                name: TableName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
                kind,
                is_partition: row.get(4),
                estimated_rows: estimate.filter(|e| *e >= 0.0).map(|e| e as u64),
                can_select: row.get(6),
            }
        })
        .collect())
}

fn select(
    relations: &[Relation],
    schemas: &[String],
    selectors: &[TableSelector],
) -> Result<Vec<Relation>, ExportError> {
    if selectors.is_empty() {
        let tables = || {
            relations
                .iter()
                .filter(|r| matches!(r.kind, TableKind::Table | TableKind::Partitioned))
                .filter(|r| !r.is_partition)
        };
        let selected: Vec<Relation> =
            tables().filter(|r| schemas.contains(&r.name.schema)).cloned().collect();
        if selected.is_empty() {
            // Nothing to export is a mistake (a wrong schema or database), not a success.
            let mut elsewhere: Vec<String> = tables().map(|r| r.name.schema.clone()).collect();
            elsewhere.dedup();
            return Err(ExportError::NoTables { schemas: schemas.to_vec(), elsewhere });
        }
        return Ok(selected);
    }
    let mut selected: Vec<Relation> = Vec::new();
    for selector in selectors {
        let found = relations.iter().find(|r| match &selector.schema {
            Some(schema) => &r.name.schema == schema && r.name.name == selector.name,
            None => schemas.contains(&r.name.schema) && r.name.name == selector.name,
        });
        match found {
            Some(relation) if !selected.iter().any(|s| s.oid == relation.oid) => {
                selected.push(relation.clone())
            }
            Some(_) => {}
            None => {
                return Err(ExportError::TableMissing {
                    name: selector.to_string(),
                    schemas: schemas.to_vec(),
                    suggestion: suggest(relations, schemas, selector),
                });
            }
        }
    }
    Ok(selected)
}

/// The closest existing relation name, when one is close enough to be a likely typo.
fn suggest(relations: &[Relation], schemas: &[String], selector: &TableSelector) -> Option<String> {
    let wanted = selector.to_string().to_lowercase();
    relations
        .iter()
        .map(|r| {
            let candidate =
                if selector.schema.is_some() { r.name.to_string() } else { r.name.name.clone() };
            let in_schemas = if schemas.contains(&r.name.schema) { 0.01 } else { 0.0 };
            let score = strsim::jaro_winkler(&wanted, &candidate.to_lowercase()) + in_schemas;
            (score, r.name.to_string())
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

struct TypeInfo {
    schema: String,
    name: String,
    typtype: String,
    category: String,
    element: u32,
    base: u32,
}

/// Every type of the database, to resolve domains, arrays and enums without a query per column.
struct TypeCatalog {
    types: HashMap<u32, TypeInfo>,
    enum_labels: HashMap<u32, Vec<String>>,
}

impl TypeCatalog {
    async fn load(client: &Client) -> Result<Self, ExportError> {
        let rows = client
            .query(
                "select t.oid, n.nspname::text, t.typname::text, t.typtype::text,
                        t.typcategory::text, t.typelem, t.typbasetype
                   from pg_type t join pg_namespace n on n.oid = t.typnamespace",
                &[],
            )
            .await
            .map_err(ExportError::catalog)?;
        let types = rows
            .iter()
            .map(|row| {
                let info = TypeInfo {
                    schema: row.get(1),
                    name: row.get(2),
                    typtype: row.get(3),
                    category: row.get(4),
                    element: row.get(5),
                    base: row.get(6),
                };
                (row.get::<_, u32>(0), info)
            })
            .collect();
        let mut enum_labels: HashMap<u32, Vec<String>> = HashMap::new();
        let rows = client
            .query(
                "select enumtypid, enumlabel::text from pg_enum order by enumtypid, enumsortorder",
                &[],
            )
            .await
            .map_err(ExportError::catalog)?;
        for row in rows {
            enum_labels.entry(row.get(0)).or_default().push(row.get(1));
        }
        Ok(Self { types, enum_labels })
    }

    /// The base type (domains resolved), whether it is an array, and the outermost domain.
    fn resolve(&self, mut oid: u32) -> (PgType, bool, Option<String>) {
        let mut array = false;
        let mut domain = None;
        loop {
            let Some(info) = self.types.get(&oid) else {
                return (PgType::Other(format!("oid {oid}")), array, domain);
            };
            let qualified = if info.schema == "pg_catalog" {
                info.name.clone()
            } else {
                format!("{}.{}", info.schema, info.name)
            };
            if info.typtype == "d" && info.base != 0 {
                domain.get_or_insert(qualified);
                oid = info.base;
            } else if info.category == "A" && info.element != 0 && !array {
                array = true;
                oid = info.element;
            } else if info.typtype == "e" {
                let labels = self.enum_labels.get(&oid).cloned().unwrap_or_default();
                return (PgType::Enum { name: qualified, labels }, array, domain);
            } else {
                let known = (info.schema == "pg_catalog" || info.name == "citext")
                    .then(|| PgType::builtin(&info.name))
                    .flatten();
                return (known.unwrap_or(PgType::Other(qualified)), array, domain);
            }
        }
    }
}

async fn columns(
    client: &Client,
    oids: &[u32],
    types: &TypeCatalog,
) -> Result<HashMap<u32, Vec<Column>>, ExportError> {
    let rows = client
        .query(
            "select a.attrelid, a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod),
                    not a.attnotnull, a.attgenerated::text <> '',
                    (select quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                       from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
                      where co.oid = a.attcollation and not co.collisdeterministic)
               from pg_attribute a
              where a.attrelid = any($1) and a.attnum > 0 and not a.attisdropped
              order by a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(ExportError::catalog)?;
    let lowering = citext_lowering(client).await?;
    let mut columns: HashMap<u32, Vec<Column>> = HashMap::new();
    for row in rows {
        let (ty, array, domain) = types.resolve(row.get(2));
        let citext_lowering = if ty == PgType::Citext { lowering } else { None };
        columns.entry(row.get(0)).or_default().push(Column {
            citext_lowering,
            name: row.get(1),
            sql_type: row.get(3),
            ty,
            array,
            domain,
            nullable: row.get(4),
            generated: row.get(5),
            nondeterministic_collation: row.get(6),
        });
    }
    Ok(columns)
}

/// How citext lowercases in this database: under its default locale (`str_tolower` with the
/// default collation), whatever a column's own collation. `None`: per character, as a libc
/// UTF-8 locale does. Read through `to_jsonb` so that servers without `datlocprovider` (before
/// 15) or `datlocale` (before 17) answer too.
async fn citext_lowering(client: &Client) -> Result<Option<CitextLowering>, ExportError> {
    let row = client
        .query_one(
            "select d ->> 'datctype', d ->> 'datlocprovider', d ->> 'datlocale'
               from (select to_jsonb(d) as d from pg_database d
                      where d.datname = current_database()) as db",
            &[],
        )
        .await
        .map_err(ExportError::catalog)?;
    let ctype: Option<String> = row.get(0);
    let provider: Option<String> = row.get(1);
    let locale: Option<String> = row.get(2);
    let c = |name: Option<&str>| matches!(name, Some("C" | "POSIX"));
    Ok(match provider.as_deref() {
        Some("i") => Some(CitextLowering::Full),
        Some("b") if c(locale.as_deref()) => Some(CitextLowering::Ascii),
        Some("b") => None,
        _ if c(ctype.as_deref()) => Some(CitextLowering::Ascii),
        _ => None,
    })
}

#[derive(Default)]
struct Keys {
    primary: Vec<String>,
    unique: Vec<Vec<String>>,
    foreign: Vec<ForeignKey>,
}

async fn keys(client: &Client, oids: &[u32]) -> Result<BTreeMap<u32, Keys>, ExportError> {
    let constraints = client
        .query(
            r"select con.conrelid, con.contype::text, con.conname::text,
                     array(select a.attname::text
                             from unnest(con.conkey) with ordinality k(num, ord)
                             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.num
                            order by k.ord),
                     fn.nspname::text, fc.relname::text,
                     array(select a.attname::text
                             from unnest(con.confkey) with ordinality k(num, ord)
                             join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.num
                            order by k.ord)
                from pg_constraint con
                left join pg_class fc on fc.oid = con.confrelid
                left join pg_namespace fn on fn.oid = fc.relnamespace
               where con.conrelid = any($1) and con.contype in ('p', 'u', 'f')
                 and not exists (select 1 from pg_constraint pc
                                  where pc.oid = con.conparentid and pc.conrelid = con.conrelid)
               order by con.conrelid, con.contype, con.conname",
            &[&oids],
        )
        .await
        .map_err(ExportError::catalog)?;
    let mut keys: BTreeMap<u32, Keys> = BTreeMap::new();
    for row in constraints {
        let entry = keys.entry(row.get(0)).or_default();
        let columns: Vec<String> = row.get(3);
        match row.get::<_, String>(1).as_str() {
            "p" => entry.primary = columns,
            "u" => entry.unique.push(columns),
            _ => entry.foreign.push(ForeignKey {
                name: row.get(2),
                columns,
                references: TableName::new(row.get::<_, String>(4), row.get::<_, String>(5)),
                referenced_columns: row.get(6),
            }),
        }
    }
    let unique_indexes = client
        .query(
            r"select i.indrelid,
                     array(select a.attname::text
                             from unnest(i.indkey::int2[]) with ordinality k(num, ord)
                             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.num
                            where k.ord <= i.indnkeyatts
                            order by k.ord)
                from pg_index i
               where i.indrelid = any($1) and i.indisunique and not i.indisprimary
                 and i.indpred is null and i.indexprs is null
                 and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
               order by i.indrelid, i.indexrelid",
            &[&oids],
        )
        .await
        .map_err(ExportError::catalog)?;
    for row in unique_indexes {
        let columns: Vec<String> = row.get(1);
        let entry = keys.entry(row.get(0)).or_default();
        if !entry.unique.contains(&columns) {
            entry.unique.push(columns);
        }
    }
    Ok(keys)
}

/// A leaf partition of a partitioned table and the foreign keys it holds (its own and those it
/// inherits).
struct Leaf {
    name: TableName,
    foreign: Vec<ForeignKey>,
}

/// The leaf partitions (those holding rows, at any depth) of each partitioned table of
/// `parents`, with their foreign keys, in name order.
async fn partitions(
    client: &Client,
    parents: &[u32],
) -> Result<HashMap<u32, Vec<Leaf>>, ExportError> {
    if parents.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            "select p.oid, t.relid::oid, n.nspname::text, c.relname::text
               from unnest($1::oid[]) as p(oid)
              cross join lateral pg_partition_tree(p.oid) t
               join pg_class c on c.oid = t.relid
               join pg_namespace n on n.oid = c.relnamespace
              where t.isleaf
              order by 1, 3, 4",
            &[&parents],
        )
        .await
        .map_err(ExportError::catalog)?;
    let mut parent_of: HashMap<u32, (u32, usize)> = HashMap::new();
    let mut leaves: HashMap<u32, Vec<Leaf>> = HashMap::new();
    for row in &rows {
        let list = leaves.entry(row.get(0)).or_default();
        parent_of.insert(row.get(1), (row.get(0), list.len()));
        list.push(Leaf {
            name: TableName::new(row.get::<_, String>(2), row.get::<_, String>(3)),
            foreign: Vec::new(),
        });
    }
    let oids: Vec<u32> = parent_of.keys().copied().collect();
    let mut keys = keys(client, &oids).await?;
    for (leaf, (parent, index)) in parent_of {
        if let Some(keys) = keys.remove(&leaf) {
            leaves.get_mut(&parent).expect("a listed parent")[index].foreign = keys.foreign;
        }
    }
    Ok(leaves)
}

/// A foreign key as a set of (column, referenced column) pairs and the referenced table: two
/// keys that list their pairs in another order are the same key.
type Signature = (TableName, Vec<(String, String)>);

fn signature(fk: &ForeignKey) -> Signature {
    let mut pairs: Vec<(String, String)> =
        fk.columns.iter().cloned().zip(fk.referenced_columns.iter().cloned()).collect();
    pairs.sort();
    (fk.references.clone(), pairs)
}

/// Attaches to the partitioned table `parent` the foreign keys every leaf partition declares
/// and it does not (named as Postgres would name them on it), and records the ones only some
/// partitions declare. `None` when the partitions declare nothing the table lacks.
fn attach_partition_keys(
    parent: &TableName,
    foreign: &mut Vec<ForeignKey>,
    leaves: &[Leaf],
) -> Option<PartitionKeys> {
    let own: Vec<Signature> = foreign.iter().map(signature).collect();
    // Each key the partitions declare, first seen first, with the partitions declaring it.
    let mut found: Vec<(Signature, &ForeignKey, Vec<usize>)> = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        for fk in &leaf.foreign {
            let key = signature(fk);
            if own.contains(&key) {
                continue;
            }
            match found.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, _, on)) if on.last() == Some(&i) => {}
                Some((_, _, on)) => on.push(i),
                None => found.push((key, fk, vec![i])),
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    let mut keys = PartitionKeys { partitions: leaves.len(), ..PartitionKeys::default() };
    for (_, fk, on) in found {
        if on.len() == leaves.len() {
            let base = format!("{}_{}_fkey", parent.name, fk.columns.join("_"));
            let mut name = base.clone();
            let mut n = 0;
            while foreign.iter().any(|other| other.name == name) {
                n += 1;
                name = format!("{base}{n}");
            }
            keys.attached.push(name.clone());
            foreign.push(ForeignKey { name, ..fk.clone() });
        } else {
            let (declared_on, missing_on) = leaves
                .iter()
                .enumerate()
                .map(|(i, leaf)| (on.contains(&i), leaf.name.clone()))
                .partition::<Vec<_>, _>(|(declared, _)| *declared);
            keys.partial.push(PartialForeignKey {
                columns: fk.columns.clone(),
                references: fk.references.clone(),
                referenced_columns: fk.referenced_columns.clone(),
                declared_on: declared_on.into_iter().map(|(_, name)| name).collect(),
                missing_on: missing_on.into_iter().map(|(_, name)| name).collect(),
            });
        }
    }
    Some(keys)
}

/// Every valid index of the relations, by name. `indnullsnotdistinct` (Postgres 15+) is read
/// through `to_jsonb`, so that older servers answer too.
async fn indexes(client: &Client, oids: &[u32]) -> Result<HashMap<u32, Vec<Index>>, ExportError> {
    let rows = client
        .query(
            r"select i.indrelid, ic.relname::text, am.amname::text, i.indisunique, i.indisprimary,
                     coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false),
                     pg_get_expr(i.indpred, i.indrelid, true),
                     array(select a.attname::text
                             from unnest(i.indkey::int2[]) with ordinality k(num, ord)
                             left join pg_attribute a
                               on a.attrelid = i.indrelid and a.attnum = k.num and k.num <> 0
                            where k.ord <= i.indnkeyatts
                            order by k.ord),
                     array(select pg_get_indexdef(i.indexrelid, k.ord::int, true)
                             from unnest(i.indkey::int2[]) with ordinality k(num, ord)
                            where k.ord <= i.indnkeyatts
                            order by k.ord)
                from pg_index i
                join pg_class ic on ic.oid = i.indexrelid
                join pg_am am on am.oid = ic.relam
               where i.indrelid = any($1) and i.indisvalid
               order by i.indrelid, ic.relname",
            &[&oids],
        )
        .await
        .map_err(ExportError::catalog)?;
    let mut indexes: HashMap<u32, Vec<Index>> = HashMap::new();
    for row in rows {
        let columns: Vec<Option<String>> = row.get(7);
        let definitions: Vec<String> = row.get(8);
        let keys = columns
            .into_iter()
            .zip(definitions)
            .map(|(column, definition)| match column {
                Some(name) => IndexKey::Column(name),
                None => IndexKey::Expression(definition),
            })
            .collect();
        indexes.entry(row.get(0)).or_default().push(Index {
            name: row.get(1),
            method: row.get(2),
            keys,
            unique: row.get(3),
            primary: row.get(4),
            nulls_not_distinct: row.get(5),
            predicate: row.get(6),
        });
    }
    Ok(indexes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation(
        oid: u32,
        schema: &str,
        name: &str,
        kind: TableKind,
        is_partition: bool,
    ) -> Relation {
        Relation {
            oid,
            name: TableName::new(schema, name),
            kind,
            is_partition,
            estimated_rows: None,
            can_select: true,
        }
    }

    fn catalog() -> Vec<Relation> {
        vec![
            relation(1, "public", "users", TableKind::Table, false),
            relation(2, "public", "events", TableKind::Partitioned, false),
            relation(3, "public", "events_2024", TableKind::Table, true),
            relation(4, "public", "active_users", TableKind::View, false),
            relation(5, "auth", "users", TableKind::Table, false),
        ]
    }

    fn names(selected: Vec<Relation>) -> Vec<String> {
        selected.into_iter().map(|r| r.name.to_string()).collect()
    }

    fn fk(name: &str, columns: &[&str], references: &str, referenced: &[&str]) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            references: TableName::new("public", references),
            referenced_columns: referenced.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn leaf(name: &str, foreign: Vec<ForeignKey>) -> Leaf {
        Leaf { name: TableName::new("public", name), foreign }
    }

    #[test]
    fn keys_every_partition_declares_are_attached_to_the_parent() {
        let parent = TableName::new("public", "payment");
        // The parent declares one key itself (its partitions inherit it); each partition
        // declares two more, one with its columns in another order.
        let mut foreign = vec![fk("payment_staff_id_fkey", &["staff_id"], "staff", &["id"])];
        let inherited = fk("payment_staff_id_fkey", &["staff_id"], "staff", &["id"]);
        let leaves = vec![
            leaf(
                "payment_p1",
                vec![
                    inherited.clone(),
                    fk("payment_p1_customer_id_fkey", &["customer_id"], "customer", &["id"]),
                    fk("p1_store", &["store_id", "till"], "till", &["store", "no"]),
                ],
            ),
            leaf(
                "payment_p2",
                vec![
                    fk("payment_p2_customer_id_fkey", &["customer_id"], "customer", &["id"]),
                    fk("p2_store", &["till", "store_id"], "till", &["no", "store"]),
                    inherited,
                ],
            ),
        ];
        let keys = attach_partition_keys(&parent, &mut foreign, &leaves).unwrap();
        assert_eq!(keys.partitions, 2);
        assert_eq!(keys.attached, ["payment_customer_id_fkey", "payment_store_id_till_fkey"]);
        assert!(keys.partial.is_empty());
        assert_eq!(foreign.len(), 3);
        assert_eq!(
            foreign[1],
            fk("payment_customer_id_fkey", &["customer_id"], "customer", &["id"])
        );
        assert_eq!(foreign[2].columns, ["store_id", "till"], "the first partition's order");

        // Nothing to say when the partitions hold only what the parent declares.
        let mut foreign = vec![fk("payment_staff_id_fkey", &["staff_id"], "staff", &["id"])];
        let only_inherited =
            vec![leaf("payment_p1", vec![foreign[0].clone()]), leaf("payment_p2", vec![])];
        assert_eq!(attach_partition_keys(&parent, &mut foreign, &only_inherited), None);
    }

    #[test]
    fn keys_some_partitions_lack_are_recorded_and_not_attached() {
        let parent = TableName::new("public", "payment");
        let mut foreign = vec![fk("payment_customer_id_fkey", &["x"], "other", &["id"])];
        let leaves = vec![
            leaf("payment_p1", vec![fk("a", &["customer_id"], "customer", &["id"])]),
            leaf("payment_p2", vec![fk("b", &["customer_id"], "client", &["id"])]),
            leaf(
                "payment_p3",
                vec![
                    fk("c", &["customer_id"], "customer", &["id"]),
                    fk("c2", &["store_id"], "store", &["id"]),
                ],
            ),
        ];
        let keys = attach_partition_keys(&parent, &mut foreign, &leaves).unwrap();
        assert!(keys.attached.is_empty());
        assert_eq!(foreign.len(), 1, "nothing attached");
        let partial: Vec<(String, Vec<String>, Vec<String>)> = keys
            .partial
            .iter()
            .map(|p| {
                let names = |list: &[TableName]| list.iter().map(|t| t.name.clone()).collect();
                (p.references.name.clone(), names(&p.declared_on), names(&p.missing_on))
            })
            .collect();
        assert_eq!(
            partial,
            [
                (
                    "customer".into(),
                    vec!["payment_p1".into(), "payment_p3".into()],
                    vec!["payment_p2".into()]
                ),
                (
                    "client".into(),
                    vec!["payment_p2".into()],
                    vec!["payment_p1".into(), "payment_p3".into()]
                ),
                (
                    "store".into(),
                    vec!["payment_p3".into()],
                    vec!["payment_p1".into(), "payment_p2".into()]
                ),
            ]
        );

        // A name the parent already uses gets a number.
        let mut foreign = vec![fk("payment_customer_id_fkey", &["x"], "other", &["id"])];
        let agreeing =
            vec![leaf("payment_p1", vec![fk("a", &["customer_id"], "customer", &["id"])])];
        let keys = attach_partition_keys(&parent, &mut foreign, &agreeing).unwrap();
        assert_eq!(keys.attached, ["payment_customer_id_fkey1"]);
    }

    #[test]
    fn default_selection_is_tables_of_the_schemas_without_partitions_or_views() {
        let selected = select(&catalog(), &["public".into()], &[]).unwrap();
        assert_eq!(names(selected), ["public.users", "public.events"]);
    }

    #[test]
    fn named_relations_include_views_and_other_schemas() {
        let selectors: Vec<TableSelector> =
            ["active_users", "auth.users", "users"].iter().map(|s| s.parse().unwrap()).collect();
        let selected = select(&catalog(), &["public".into()], &selectors).unwrap();
        assert_eq!(names(selected), ["public.active_users", "auth.users", "public.users"]);
    }

    #[test]
    fn a_missing_table_suggests_the_closest_name() {
        let selectors = vec!["usres".parse().unwrap()];
        let err = select(&catalog(), &["public".into()], &selectors).unwrap_err();
        match err {
            ExportError::TableMissing { name, suggestion, .. } => {
                assert_eq!(name, "usres");
                assert_eq!(suggestion.as_deref(), Some("public.users"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let selectors = vec!["zzz".parse().unwrap()];
        assert!(matches!(
            select(&catalog(), &["public".into()], &selectors),
            Err(ExportError::TableMissing { suggestion: None, .. })
        ));
    }
}
