//! The Convex side of import and verify: the user's `convex/migrate.ts`, the internal functions
//! `migrate import` and `migrate verify` call over Convex's HTTP API (docs/convex-module.md is
//! their contract), written from the resolved [`Plan`].
//!
//! The functions are the same for every plan; what a plan changes is one line,
//! `const PLAN = <compact JSON>;`, holding exactly what `migrate:info` returns. Tools that stand
//! in for Convex in tests read the plan from that line, so it is always one line of JSON that
//! starts with [`PLAN_LINE_PREFIX`] and ends with `;`.
//!
//! The output depends on nothing but the plan: the same plan gives the same bytes.

use serde::ser::{Serialize, Serializer};

use super::codegen::{
    FILES_PATH_INDEX, FILES_STORAGE_INDEX, FILES_TABLE, LEDGER_IMPORT_INDEX, LEDGER_TABLE,
    LEGACY_ID_INDEX, STORAGE_TABLE, generated_from, ledger_status_validator, string_literal,
};
use super::model::{Plan, TablePlan};

/// `version` of what `migrate:info` returns: changes when the functions' contract does.
/// 2: `upsert` keeps the `deferred` fields of an existing document; the ledger functions;
///    `readBack`, verify's read-back with references resolved on the server.
/// 3: `readBack` takes an optional `_creationTime` range (`from`, `to`); `creationTimes`.
/// 4: the ledger keeps one entry per import and plan version (plan version and files, counts,
///    started/finished times, the statuses of rollback and finalize); `ledgerList`;
///    `removeDocs`, rollback's delete by Convex id; `unsetLegacyIds`, finalize's patch; writes
///    into a component's tables through its own functions (auth presets); the file functions
///    (`generateUploadUrl`, `recordFiles`, `findStored`, …).
/// 5: a reference field's parent may be `_storage`: a file column (`policy = "file"`), whose
///    legacy id is the object's key; `upsert` and `patchRefs` resolve it to the stored file's id
///    through `migrateFiles`, `readBack` back to the key.
///    Also `removeFiles`, rollback's and sync's removal of migrated files with their records.
pub const MODULE_VERSION: u32 = 5;

/// The start of the module's only line holding the plan; the compact JSON follows, then `;`.
pub const PLAN_LINE_PREFIX: &str = "const PLAN = ";

/// `convex/migrate.ts` for `plan`.
pub fn migrate_ts(plan: &Plan) -> String {
    let info = serde_json::to_string(&Info {
        version: MODULE_VERSION,
        plan_hash: &plan.hash,
        tables: Tables(&plan.tables),
    })
    .expect("the plan info always serializes")
    // JSON allows U+2028 and U+2029 raw inside strings, but some readers end a line at them;
    // escaped, the line stays one line for every reader (and they can only be inside strings).
    .replace('\u{2028}', "\\u2028")
    .replace('\u{2029}', "\\u2029");
    let mut out = String::new();
    out.push_str(&generated_from(plan));
    out.push_str(HEADER);
    out.push_str(IMPORTS);
    out.push_str(&format!("{PLAN_LINE_PREFIX}{info};\n"));
    out.push_str(
        &BODY
            .replace("$LEGACY_ID_INDEX", &string_literal(LEGACY_ID_INDEX))
            .replace("$LEDGER_TABLE", &string_literal(LEDGER_TABLE))
            .replace("$LEDGER_IMPORT_INDEX", &string_literal(LEDGER_IMPORT_INDEX))
            .replace("$LEDGER_STATUS", &ledger_status_validator())
            .replace("$STORAGE_TABLE", &string_literal(STORAGE_TABLE))
            .replace("$FILES_TABLE", &string_literal(FILES_TABLE))
            .replace("$FILES_PATH_INDEX", &string_literal(FILES_PATH_INDEX))
            .replace("$FILES_STORAGE_INDEX", &string_literal(FILES_STORAGE_INDEX)),
    );
    if plan.files.is_some() {
        out.push_str(FILES_BODY);
        out.push_str(FILES_REMOVE_BODY);
    }
    out
}

/// What `migrate:info` returns: `{"version":5,"planHash":…,"tables":{…}}`, in this order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Info<'a> {
    version: u32,
    plan_hash: &'a str,
    tables: Tables<'a>,
}

/// `{"<table>": {"legacyIdField": …, "references": {"<field>": "<parent table>"}}}`, in plan
/// order.
struct Tables<'a>(&'a [TablePlan]);

impl Serialize for Tables<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|table| {
            let info = TableInfo {
                legacy_id_field: &table.legacy_id.field,
                references: References(table),
                component: table.component.as_ref().map(|c| c.name.as_str()),
            };
            (&table.target, info)
        }))
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TableInfo<'a> {
    legacy_id_field: &'a str,
    references: References<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<&'a str>,
}

/// Each reference field's parent table, then each file column's: `_storage` (its legacy id is
/// the object's key, `<bucket>/<path>`).
struct References<'a>(&'a TablePlan);

impl Serialize for References<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let references = self.0.references.iter().map(|r| (&r.field, r.parent_target.as_str()));
        let files = self.0.files.iter().map(|f| (&f.field, STORAGE_TABLE));
        serializer.collect_map(references.chain(files))
    }
}

const HEADER: &str = "\
// The internal functions `migrate import` and `migrate verify` call over Convex's HTTP API with
// the deploy key (docs/convex-module.md); deploy it with the app, whose schema spreads the tables
// of migrateTables.ts. Nothing here is public: without the deploy key, every function answers as
// if it did not exist. Import refuses a module generated from another plan: run `migrate init`
// again after changing the plan.
//
// The line starting with `const PLAN = ` is the plan, exactly what `migrate:info` returns, as one
// line of compact JSON: tools that stand in for Convex in tests read the plan from that line, so
// keep it on one line.
";

const IMPORTS: &str = r#"import {
  componentsGeneric,
  internalMutationGeneric,
  internalQueryGeneric,
} from "convex/server";
import type {
  FunctionReference,
  GenericDatabaseReader,
  GenericDataModel,
  GenericDocument,
  GenericMutationCtx,
  GenericQueryCtx,
} from "convex/server";
import { v } from "convex/values";
import type { GenericId } from "convex/values";

"#;

/// Everything after the plan line: the same for every plan but the table and index names.
const BODY: &str = r#"
/**
 * One table of the plan: its legacy id field, per reference field the parent table, and the
 * Convex component holding it (an auth preset's Better Auth tables), if any.
 */
type TableInfo = {
  legacyIdField: string;
  references: Record<string, string>;
  component?: string;
};

const TABLES: Record<string, TableInfo> = PLAN.tables;

/** The index migrateTables.ts gives every table on its legacy id field. */
const LEGACY_ID_INDEX = $LEGACY_ID_INDEX;

/** At most this many legacy ids per `get`: one index range each, well inside a query's 4,096. */
const MAX_GET = 1000;

/** The most ledger entries `ledgerList` returns: one per import and plan version. */
const MAX_LEDGER = 1000;

/** The ledger table (in migrateTables.ts): one document per import into this deployment. */
const LEDGER_TABLE = $LEDGER_TABLE;

/** The ledger's index on `importId`. */
const LEDGER_IMPORT_INDEX = $LEDGER_IMPORT_INDEX;

/**
 * Convex's table of stored files. A reference to it is a file column (`policy = "file"` in the
 * plan): its legacy id is the object's key, `<bucket>/<path>`, and the field holds the id of the
 * file import uploaded, which the migrated files' table records (when the plan has `[files]`).
 */
const STORAGE_TABLE = $STORAGE_TABLE;

/** The table of migrated files (migrateTables.ts): one document per storage object. */
const FILES_TABLE = $FILES_TABLE;

/** Its index on `key`, `<bucket>/<path>` (a bucket name holds no `/`). */
const FILES_PATH_INDEX = $FILES_PATH_INDEX;

/** Its index on `storageId`. */
const FILES_STORAGE_INDEX = $FILES_STORAGE_INDEX;

/** A reference as transform writes it: the parent's table and legacy id. */
const reference = v.object({ table: v.string(), legacyId: v.string() });

// This module typechecks before `npx convex dev` has generated the app's data model, so it sees
// the database through Convex's generic one, where a document's `_id` is typed only as a value.
// It writes with `db.replace(id, …)`, `db.patch(id, …)` and `db.delete(id)`, which every version
// of the `convex` package has (the forms taking the table name first came later).
type Db = GenericDatabaseReader<GenericDataModel>;
type QueryCtx = GenericQueryCtx<GenericDataModel>;
type MutationCtx = GenericMutationCtx<GenericDataModel>;

// A table of a component (Better Auth's `user`, `account`, …) is written through the
// component's own adapter functions (`create`, `updateOne`, `deleteOne`), whose validators are
// the component schema's, and read through the `migrate` queries the preset puts beside them
// (by legacy id, by id, a page in creation order). Its documents' ids are strings to the app.
type Ref<Type extends "query" | "mutation"> = FunctionReference<Type, "internal">;
type ComponentApi = {
  adapter: { create: Ref<"mutation">; updateOne: Ref<"mutation">; deleteOne: Ref<"mutation"> };
  migrate: {
    find: Ref<"query">;
    getMany: Ref<"query">;
    page: Ref<"query">;
    creationTimes: Ref<"query">;
  };
};
// `componentsGeneric()` is what `_generated/api` exports as `components`, untyped before codegen.
const COMPONENTS = componentsGeneric() as unknown as Record<string, ComponentApi>;

/** The component holding `table`, or null for a table of the app. */
function componentOf(table: string): ComponentApi | null {
  const { component } = tableInfo(table);
  return component === undefined ? null : COMPONENTS[component];
}

/**
 * A Better Auth `user` document may carry its Supabase password hash in this field: it is
 * stored as the user's `credential` account (Better Auth keeps passwords there), whose legacy id
 * is the user's with this prefix, and read back into the field for verify.
 */
const CREDENTIAL_FIELD = "credentialPassword";
const CREDENTIAL_PREFIX = "credential:";

/** The id of a document read from the database, which always holds one. */
function idOf(doc: GenericDocument): GenericId<string> {
  // The generic data model types `_id` as any Convex value.
  return doc._id as GenericId<string>;
}

/**
 * Whether `object` has the key itself: `in` (or indexing) would find "constructor" and the like
 * on Object's prototype. (`Object.hasOwn` needs the ES2022 lib, which older apps' tsconfig lacks.)
 */
function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/** The plan of `table`; any table the plan does not have is refused. */
function tableInfo(table: string): TableInfo {
  if (!hasOwn(TABLES, table)) {
    throw new Error(`unknown table ${JSON.stringify(table)}`);
  }
  return TABLES[table];
}

/** The documents of `table` whose legacy id is `legacyId`, through the legacy id index. */
function byLegacyId(db: Db, table: string, legacyId: string) {
  const { legacyIdField } = tableInfo(table);
  return db.query(table).withIndex(LEGACY_ID_INDEX, (q) => q.eq(legacyIdField, legacyId));
}

/** The document of `table` with legacy id `legacyId`, or null; two of them is an error. */
async function findByLegacyId(
  ctx: QueryCtx,
  table: string,
  legacyId: string,
): Promise<GenericDocument | null> {
  const component = componentOf(table);
  if (component !== null) {
    const [found] = await ctx.runQuery(component.migrate.find, {
      model: table,
      legacyIds: [legacyId],
    });
    return found === null ? null : withCredential(ctx, table, found);
  }
  const found = await byLegacyId(ctx.db, table, legacyId).take(2);
  if (found.length > 1) {
    throw new Error(`${table} ${legacyId}: 2 documents have this legacy id`);
  }
  return found.length === 1 ? found[0] : null;
}

/** A component's `user` document with its credential account's password, when it has one. */
async function withCredential(
  ctx: QueryCtx,
  table: string,
  doc: GenericDocument,
): Promise<GenericDocument> {
  const { legacyIdField } = tableInfo(table);
  const component = componentOf(table);
  if (component === null || table !== "user" || typeof doc[legacyIdField] !== "string") {
    return doc;
  }
  const [account] = await ctx.runQuery(component.migrate.find, {
    model: "account",
    legacyIds: [CREDENTIAL_PREFIX + doc[legacyIdField]],
  });
  return account === null || typeof account.password !== "string"
    ? doc
    : { ...doc, [CREDENTIAL_FIELD]: account.password };
}

/**
 * Writes `document` (legacy id `legacyId`) into a component's table: inserted through the
 * adapter's `create`, or `existing` updated through `updateOne` (fields it no longer has set to
 * null, the component's optional fields taking null). A `user`'s credential password becomes
 * or updates its `credential` account. Returns the document's id.
 */
async function writeComponent(
  ctx: MutationCtx,
  component: ComponentApi,
  table: string,
  legacyId: string,
  document: GenericDocument,
  existing: GenericDocument | null,
): Promise<string> {
  const { [CREDENTIAL_FIELD]: password, ...data } = document;
  if (password !== undefined && table !== "user") {
    throw new Error(`${table} ${legacyId}: ${CREDENTIAL_FIELD} belongs to the user table only`);
  }
  let id: string;
  if (existing === null) {
    const created = await ctx.runMutation(component.adapter.create, {
      input: { model: table, data },
    });
    id = created._id;
  } else {
    id = String(existing._id);
    await updateComponent(ctx, component, table, id, data, existing);
  }
  if (password === undefined) {
    return id;
  }
  if (typeof password !== "string") {
    throw new Error(`${table} ${legacyId}: ${CREDENTIAL_FIELD} is not a string`);
  }
  // Better Auth's own sign-up writes a credential account with `accountId` = the user's id.
  const { legacyIdField } = tableInfo(table);
  const account: GenericDocument = {
    [legacyIdField]: CREDENTIAL_PREFIX + legacyId,
    providerId: "credential",
    accountId: id,
    userId: id,
    password,
    createdAt: data.createdAt,
    updatedAt: data.updatedAt,
  };
  const [found] = await ctx.runQuery(component.migrate.find, {
    model: "account",
    legacyIds: [account[legacyIdField]],
  });
  if (found === null) {
    await ctx.runMutation(component.adapter.create, { input: { model: "account", data: account } });
  } else {
    await updateComponent(ctx, component, "account", String(found._id), account, found);
  }
  return id;
}

/**
 * Whether `doc` of `table` is a Better Auth credential account whose `accountId` names its own
 * user (`userLegacyId` in the source, the user's new id once written): import writes the new
 * id there, and verify reads it back as the legacy one.
 */
function isOwnCredential(table: string, doc: GenericDocument, userId: unknown): boolean {
  return (
    table === "account" &&
    doc.providerId === "credential" &&
    typeof userId === "string" &&
    doc.accountId === userId
  );
}

/** `updateOne` on the document `id`: `data` over it, its other fields set to null. */
async function updateComponent(
  ctx: MutationCtx,
  component: ComponentApi,
  table: string,
  id: string,
  data: GenericDocument,
  existing: GenericDocument,
) {
  const update: GenericDocument = { ...data };
  for (const field of Object.keys(existing)) {
    if (!field.startsWith("_") && field !== CREDENTIAL_FIELD && !hasOwn(update, field)) {
      update[field] = null;
    }
  }
  await ctx.runMutation(component.adapter.updateOne, {
    input: { model: table, update, where: [{ field: "_id", value: id }] },
  });
}

/**
 * The id of the stored file the migrated files record under `key` (`<bucket>/<path>`), or null
 * when none is recorded or its bytes are gone: a file field never gets an id that names nothing.
 */
async function storedFileId(db: Db, key: string): Promise<GenericId<"_storage"> | null> {
  const record = await db
    .query(FILES_TABLE)
    .withIndex(FILES_PATH_INDEX, (q) => q.eq("key", key))
    .first();
  if (record === null) {
    return null;
  }
  const storageId = record.storageId as GenericId<"_storage">;
  return (await db.system.get(storageId)) === null ? null : storageId;
}

/**
 * The key (`<bucket>/<path>`) of the migrated file stored as `value`; null when no migrated
 * file is stored so, undefined when `value` is no stored file's id (a value kept by
 * `keep_legacy`, null).
 */
async function fileKeyOf(db: Db, value: unknown): Promise<string | null | undefined> {
  const id = typeof value === "string" ? db.system.normalizeId(STORAGE_TABLE, value) : null;
  if (id === null) {
    return undefined;
  }
  const record = await db
    .query(FILES_TABLE)
    .withIndex(FILES_STORAGE_INDEX, (q) => q.eq("storageId", id))
    .first();
  return record !== null && typeof record.key === "string" ? record.key : null;
}

/**
 * The Convex ids of the parents `refs` names for document `legacyId` of `table`. `parents`
 * remembers the parents found during one call: a batch's children often share a parent, and
 * each lookup is an index range of the mutation's 4,096.
 */
async function resolveRefs(
  ctx: QueryCtx,
  table: string,
  legacyId: string,
  refs: Record<string, { table: string; legacyId: string }>,
  parents: Map<string, GenericId<string>>,
): Promise<Record<string, GenericId<string>>> {
  const { references } = tableInfo(table);
  const resolved: Record<string, GenericId<string>> = {};
  for (const [field, ref] of Object.entries(refs)) {
    if (!hasOwn(references, field)) {
      throw new Error(`${table} ${legacyId}: ${field} is not a reference of ${table} in the plan`);
    }
    const parent = references[field];
    if (ref.table !== parent) {
      throw new Error(
        `${table} ${legacyId}: ${field} refers to ${parent} in the plan, not to ${ref.table}`,
      );
    }
    const key = JSON.stringify([parent, ref.legacyId]);
    let id = parents.get(key);
    if (id === undefined && parent === STORAGE_TABLE) {
      // A file column: the file import uploaded for the object, before any table.
      const stored = await storedFileId(ctx.db, ref.legacyId);
      if (stored === null) {
        throw new Error(
          `${table} ${legacyId}: ${field} refers to the file ${ref.legacyId}, which is not in ` +
            `Convex file storage (no migrated file records it)`,
        );
      }
      id = stored;
      parents.set(key, id);
    }
    if (id === undefined) {
      const found = await findByLegacyId(ctx, parent, ref.legacyId);
      if (found === null) {
        throw new Error(
          `${table} ${legacyId}: ${field} refers to ${parent} ${ref.legacyId}, which is not in Convex`,
        );
      }
      id = idOf(found);
      parents.set(key, id);
    }
    resolved[field] = id;
  }
  return resolved;
}

/** The plan this module was generated from: import checks it against the transformed data. */
export const info = internalQueryGeneric({
  args: {},
  handler: async () => PLAN,
});

/**
 * Inserts or replaces documents by legacy id, their references resolved to the parents' ids.
 * Applying the same call twice gives the same contents, so a retried batch is harmless.
 *
 * `deferred` names reference fields that `patchRefs` sets (those in a foreign-key cycle): an
 * existing document keeps its value of each, so that an upsert applied late, after the second
 * pass, cannot take a patched reference away.
 */
export const upsert = internalMutationGeneric({
  args: {
    table: v.string(),
    docs: v.array(
      v.object({
        doc: v.record(v.string(), v.any()),
        refs: v.optional(v.record(v.string(), reference)),
        deferred: v.optional(v.array(v.string())),
      }),
    ),
  },
  handler: async (ctx, { table, docs }) => {
    const { legacyIdField, references } = tableInfo(table);
    const parents = new Map<string, GenericId<string>>();
    const ids: GenericId<string>[] = [];
    let inserted = 0;
    let replaced = 0;
    for (const [index, { doc, refs, deferred }] of docs.entries()) {
      const legacyId = doc[legacyIdField];
      if (typeof legacyId !== "string") {
        const got = legacyId === null ? "null" : typeof legacyId;
        throw new Error(
          `${table}: document ${index + 1} of the batch has no string ${legacyIdField} (got ${got})`,
        );
      }
      const document: GenericDocument = {
        ...doc,
        ...(await resolveRefs(ctx, table, legacyId, refs ?? {}, parents)),
      };
      const existing = await findByLegacyId(ctx, table, legacyId);
      for (const field of deferred ?? []) {
        if (!hasOwn(references, field) || (refs !== undefined && hasOwn(refs, field))) {
          throw new Error(
            `${table} ${legacyId}: ${field} is deferred, but it is not a reference of ${table} ` +
              `in the plan, or the document sets it`,
          );
        }
        // The second pass owns the field: keep what it wrote (nothing, before it ran).
        delete document[field];
        if (existing !== null && hasOwn(existing, field)) {
          document[field] = existing[field];
        }
      }
      const component = componentOf(table);
      if (component !== null && isOwnCredential(table, document, refs?.userId?.legacyId)) {
        // Better Auth's credential account names its user by id: the new one.
        document.accountId = document.userId;
      }
      if (component !== null) {
        // A component's id is a string to the app; the reply carries it as any id.
        const id = await writeComponent(ctx, component, table, legacyId, document, existing);
        ids.push(id as GenericId<string>);
        if (existing === null) {
          inserted += 1;
        } else {
          replaced += 1;
        }
      } else if (existing === null) {
        ids.push(await ctx.db.insert(table, document));
        inserted += 1;
      } else {
        const id = idOf(existing);
        await ctx.db.replace(id, document);
        ids.push(id);
        replaced += 1;
      }
    }
    return { ids, inserted, replaced };
  },
});

/** Sets references of documents already in Convex: those of a foreign-key cycle. */
export const patchRefs = internalMutationGeneric({
  args: {
    table: v.string(),
    docs: v.array(v.object({ legacyId: v.string(), refs: v.record(v.string(), reference) })),
  },
  handler: async (ctx, { table, docs }) => {
    tableInfo(table);
    const parents = new Map<string, GenericId<string>>();
    const ids: GenericId<string>[] = [];
    for (const { legacyId, refs } of docs) {
      const existing = await findByLegacyId(ctx, table, legacyId);
      if (existing === null) {
        throw new Error(`${table} ${legacyId}: not in Convex`);
      }
      const id = idOf(existing);
      const resolved = await resolveRefs(ctx, table, legacyId, refs, parents);
      const component = componentOf(table);
      if (component !== null) {
        await ctx.runMutation(component.adapter.updateOne, {
          input: { model: table, update: resolved, where: [{ field: "_id", value: id }] },
        });
      } else {
        await ctx.db.patch(id, resolved);
      }
      ids.push(id);
    }
    return { ids };
  },
});

/** One page of a table, in creation order, system fields included: verify reads every table. */
export const page = internalQueryGeneric({
  args: { table: v.string(), cursor: v.union(v.string(), v.null()), numItems: v.number() },
  handler: async (ctx, { table, cursor, numItems }) => {
    tableInfo(table);
    const component = componentOf(table);
    const result =
      component !== null
        ? await componentPage(ctx, component, table, cursor, numItems)
        : await ctx.db.query(table).paginate({ cursor, numItems });
    return { page: result.page, isDone: result.isDone, continueCursor: result.continueCursor };
  },
});

/**
 * A page of a component's table, `user`s with their credential password, credential accounts
 * left out (the page may hold fewer than `numItems`).
 */
async function componentPage(
  ctx: QueryCtx,
  component: ComponentApi,
  table: string,
  cursor: string | null,
  numItems: number,
  from?: number,
  to?: number,
): Promise<{ page: GenericDocument[]; isDone: boolean; continueCursor: string }> {
  const result = await ctx.runQuery(component.migrate.page, {
    model: table,
    cursor,
    numItems,
    from,
    to,
  });
  const { legacyIdField } = tableInfo(table);
  const page: GenericDocument[] = [];
  for (const doc of result.page) {
    // A credential account is its user's password, read back with the user.
    const legacyId = doc[legacyIdField];
    if (table === "account" && String(legacyId).startsWith(CREDENTIAL_PREFIX)) {
      continue;
    }
    if (isOwnCredential(table, doc, doc.userId) && hasOwn(TABLES, "user")) {
      // Read back as transform wrote it: the user's legacy id.
      const [user] = await ctx.runQuery(component.migrate.getMany, {
        model: "user",
        ids: [doc.userId],
      });
      const userLegacyId = user === null ? null : user[tableInfo("user").legacyIdField];
      if (typeof userLegacyId === "string") {
        page.push({ ...doc, accountId: userLegacyId });
        continue;
      }
    }
    page.push(await withCredential(ctx, table, doc));
  }
  return { page, isDone: result.isDone, continueCursor: result.continueCursor };
}

/** The parent `value` names in `parentTable` (a string id), or null when it is none. */
async function parentOf(
  ctx: QueryCtx,
  parentTable: string,
  value: unknown,
): Promise<GenericDocument | null | undefined> {
  if (typeof value !== "string") {
    return undefined;
  }
  const component = componentOf(parentTable);
  if (component !== null) {
    const [found] = await ctx.runQuery(component.migrate.getMany, {
      model: parentTable,
      ids: [value],
    });
    return found;
  }
  const id = ctx.db.normalizeId(parentTable, value);
  return id === null ? undefined : await ctx.db.get(id);
}

/** A reference resolved on the server: the parent's table and legacy id. */
type Parent = { table: string; legacyId: string };

/**
 * The parent `value` names in `parentTable`, as verify compares it: its table and legacy id (a
 * file's: `_storage` and the object's key); null when `value` is the id of no document (of no
 * migrated file); undefined when it is no id of that table.
 */
async function parentRef(
  ctx: QueryCtx,
  parentTable: string,
  value: unknown,
): Promise<Parent | null | undefined> {
  if (parentTable === STORAGE_TABLE) {
    const key = await fileKeyOf(ctx.db, value);
    return typeof key === "string" ? { table: STORAGE_TABLE, legacyId: key } : key;
  }
  const found = await parentOf(ctx, parentTable, value);
  if (found === undefined) {
    return undefined;
  }
  const legacyId = found === null ? null : found[tableInfo(parentTable).legacyIdField];
  return typeof legacyId === "string" ? { table: parentTable, legacyId } : null;
}

/**
 * One page of a table for verify, in creation order: each document with, per reference field
 * holding an id of the parent table, the parent's table and legacy id (null: the id is no
 * document's; a file field's: `_storage` and the migrated file's key). Verify then needs no map
 * of every id to compare references. Each distinct parent (or file) is one index range of the
 * query's 4,096: verify keeps `numItems` × references under that. `from` and `to` bound
 * `_creationTime` (from <= t < to), each optional.
 */
export const readBack = internalQueryGeneric({
  args: {
    table: v.string(),
    cursor: v.union(v.string(), v.null()),
    numItems: v.number(),
    from: v.optional(v.number()),
    to: v.optional(v.number()),
  },
  handler: async (ctx, { table, cursor, numItems, from, to }) => {
    const { references } = tableInfo(table);
    // Only the documents with from <= _creationTime < to: verify reads ranges at once.
    const component = componentOf(table);
    const result =
      component !== null
        ? await componentPage(ctx, component, table, cursor, numItems, from, to)
        : await ctx.db
            .query(table)
            .withIndex("by_creation_time", (q) => {
              const low = from === undefined ? q : q.gte("_creationTime", from);
              return to === undefined ? low : low.lt("_creationTime", to);
            })
            .paginate({ cursor, numItems });
    const parents = new Map<string, Parent | null>();
    const page = [];
    for (const doc of result.page) {
      const refs: Record<string, Parent | null> = {};
      for (const [field, parentTable] of Object.entries(references)) {
        const key = JSON.stringify([parentTable, doc[field]]);
        let parent = parents.get(key);
        if (parent === undefined) {
          const found = await parentRef(ctx, parentTable, doc[field]);
          if (found === undefined) {
            continue;
          }
          parent = found;
          parents.set(key, parent);
        }
        refs[field] = parent;
      }
      page.push({ doc, refs });
    }
    return { page, isDone: result.isDone, continueCursor: result.continueCursor };
  },
});

/** The first and last `_creationTime` of a table (null: it is empty): verify splits it. */
export const creationTimes = internalQueryGeneric({
  args: { table: v.string() },
  handler: async (ctx, { table }) => {
    tableInfo(table);
    const component = componentOf(table);
    if (component !== null) {
      return await ctx.runQuery(component.migrate.creationTimes, { model: table });
    }
    const first = await ctx.db.query(table).withIndex("by_creation_time").order("asc").first();
    const last = await ctx.db.query(table).withIndex("by_creation_time").order("desc").first();
    return { first: first?._creationTime ?? null, last: last?._creationTime ?? null };
  },
});

/** The documents with these legacy ids, in order, null where there is none. */
export const get = internalQueryGeneric({
  args: { table: v.string(), legacyIds: v.array(v.string()) },
  handler: async (ctx, { table, legacyIds }) => {
    tableInfo(table);
    if (legacyIds.length > MAX_GET) {
      throw new Error(`get takes at most ${MAX_GET} legacy ids, not ${legacyIds.length}`);
    }
    return await Promise.all(legacyIds.map((legacyId) => findByLegacyId(ctx, table, legacyId)));
  },
});

/** Deletes every document with these legacy ids, duplicates too: rolls a rehearsal back. */
export const remove = internalMutationGeneric({
  args: { table: v.string(), legacyIds: v.array(v.string()) },
  handler: async (ctx, { table, legacyIds }) => {
    tableInfo(table);
    let deleted = 0;
    const component = componentOf(table);
    if (component !== null) {
      // The credential account goes with its user.
      const models = table === "user" ? [table, "account"] : [table];
      for (const legacyId of legacyIds) {
        for (const model of models) {
          const key = model === table ? legacyId : CREDENTIAL_PREFIX + legacyId;
          const [found] = await ctx.runQuery(component.migrate.find, {
            model,
            legacyIds: [key],
          });
          if (found !== null) {
            await ctx.runMutation(component.adapter.deleteOne, {
              input: { model, where: [{ field: "_id", value: found._id }] },
            });
            deleted += model === table ? 1 : 0;
          }
        }
      }
      return { deleted };
    }
    for (const legacyId of legacyIds) {
      for (const doc of await byLegacyId(ctx.db, table, legacyId).collect()) {
        await ctx.db.delete(idOf(doc));
        deleted += 1;
      }
    }
    return { deleted };
  },
});

/**
 * Deletes the documents `docs` names by Convex id, each only while it still holds that legacy
 * id: `migrate rollback` sends the documents it read and found as import wrote them, so a
 * document the app wrote, or one given another legacy id since, is never deleted. A document
 * already gone is skipped, so applying the same call twice deletes nothing more.
 */
export const removeDocs = internalMutationGeneric({
  args: { table: v.string(), docs: v.array(v.object({ id: v.string(), legacyId: v.string() })) },
  handler: async (ctx, { table, docs }) => {
    const { legacyIdField } = tableInfo(table);
    // `gone`: the documents of the call no longer there afterwards, deleted now or by an earlier
    // attempt of the same call whose reply was lost; what rollback counts as removed.
    let deleted = 0;
    let gone = 0;
    for (const { id, legacyId } of docs) {
      const docId = ctx.db.normalizeId(table, id);
      const found = docId === null ? null : await ctx.db.get(docId);
      if (found !== null && found[legacyIdField] === legacyId) {
        await ctx.db.delete(idOf(found));
        deleted += 1;
        gone += 1;
      } else if (docId !== null && found === null) {
        gone += 1;
      }
    }
    return { deleted, gone };
  },
});

/**
 * Takes the legacy id field out of the documents `ids` names (`migrate finalize`, once the
 * schema without the legacy id indexes, where the field is optional, is deployed). A document
 * gone, or without the field already, is skipped: applying the same call twice patches nothing
 * more.
 */
export const unsetLegacyIds = internalMutationGeneric({
  args: { table: v.string(), ids: v.array(v.string()) },
  handler: async (ctx, { table, ids }) => {
    const { legacyIdField } = tableInfo(table);
    let patched = 0;
    for (const id of ids) {
      const docId = ctx.db.normalizeId(table, id);
      const found = docId === null ? null : await ctx.db.get(docId);
      if (found !== null && found[legacyIdField] !== undefined) {
        await ctx.db.patch(idOf(found), { [legacyIdField]: undefined });
        patched += 1;
      }
    }
    return { patched };
  },
});

/** Where a migration stands in this deployment (docs/convex-module.md, "The ledger"). */
const ledgerStatus = $LEDGER_STATUS;

/** Statuses that start a run: the entry's `startedAt` is set, its `finishedAt` cleared. */
const STARTING = ["running", "rolling_back", "finalizing"];

/** The fields of a ledger entry that the functions return, in this order. */
function ledgerEntry(found: GenericDocument) {
  const { importId, planHash, planVersion, planFiles, status, counts, startedAt } = found;
  const { finishedAt, updatedAt } = found;
  return { importId, planHash, planVersion, planFiles, status, counts, startedAt, finishedAt, updatedAt };
}

/**
 * Records where the import `importId` (chosen by import when it first writes to this
 * deployment, and kept in its state with the checkpoints) stands under the plan `planHash`:
 * one entry per import and plan version, created or updated. A starting status (`running`,
 * `rolling_back`, `finalizing`) sets `startedAt` and clears `finishedAt`; any other sets
 * `finishedAt`. `counts` replaces the entry's counts when given.
 */
export const ledgerWrite = internalMutationGeneric({
  args: {
    importId: v.string(),
    planHash: v.string(),
    planVersion: v.number(),
    planFiles: v.array(v.string()),
    status: ledgerStatus,
    counts: v.optional(v.record(v.string(), v.number())),
  },
  handler: async (ctx, { importId, planHash, planVersion, planFiles, status, counts }) => {
    const now = Date.now();
    const entries = await ctx.db
      .query(LEDGER_TABLE)
      .withIndex(LEDGER_IMPORT_INDEX, (q) => q.eq("importId", importId))
      .collect();
    const found = entries.find((entry) => entry.planHash === planHash) ?? null;
    const starting = STARTING.includes(status);
    const record: GenericDocument = {
      importId,
      planHash,
      planVersion,
      planFiles,
      status,
      counts: counts ?? found?.counts ?? {},
      startedAt: starting || found === null ? now : found.startedAt,
      updatedAt: now,
    };
    if (!starting) {
      record.finishedAt = now;
    }
    if (found === null) {
      await ctx.db.insert(LEDGER_TABLE, record);
    } else {
      await ctx.db.replace(idOf(found), record);
    }
    return ledgerEntry(record);
  },
});

/**
 * The ledger's latest entry of the import `importId`, or null: a deployment emptied or
 * replaced since that import holds none, and import then sends everything again instead of
 * trusting its checkpoints.
 */
export const ledgerRead = internalQueryGeneric({
  args: { importId: v.string() },
  handler: async (ctx, { importId }) => {
    const entries = await ctx.db
      .query(LEDGER_TABLE)
      .withIndex(LEDGER_IMPORT_INDEX, (q) => q.eq("importId", importId))
      .collect();
    entries.sort((a, b) => (a.updatedAt as number) - (b.updatedAt as number));
    const last = entries.at(-1);
    return last === undefined ? null : ledgerEntry(last);
  },
});

/** Every entry of the ledger, oldest first: `migrate status --ledger`, and import's checks. */
export const ledgerList = internalQueryGeneric({
  args: {},
  handler: async (ctx) => {
    const entries = await ctx.db.query(LEDGER_TABLE).take(MAX_LEDGER);
    return entries.map(ledgerEntry);
  },
});
"#;

/// The functions that move files (docs/files.md), in the module when the plan has `[files]`.
const FILES_BODY: &str = r#"
/** One file import uploaded, as it records it. */
const migratedFile = v.object({
  bucket: v.string(),
  path: v.string(),
  owner: v.union(v.string(), v.null()),
  storageId: v.id("_storage"),
  size: v.number(),
  contentType: v.string(),
  sha256: v.string(),
  version: v.optional(v.string()),
});

/**
 * An upload URL, the way Convex apps upload: import POSTs one file's bytes there, with its
 * Content-Type, and Convex answers `{"storageId": …}`.
 */
export const generateUploadUrl = internalMutationGeneric({
  args: {},
  handler: async (ctx) => await ctx.storage.generateUploadUrl(),
});

/**
 * Records uploaded files by bucket and path, after checking each against what Convex stored
 * (size and SHA-256 of its `_storage` document). A path recorded before with another storage id
 * (its bytes changed) gets the new one, and the old file is deleted.
 */
export const recordFiles = internalMutationGeneric({
  args: { files: v.array(migratedFile) },
  handler: async (ctx, { files }) => {
    for (const file of files) {
      const name = `${file.bucket}/${file.path}`;
      const stored = await ctx.db.system.get(file.storageId);
      if (stored === null) {
        throw new Error(`${name}: Convex holds no stored file ${file.storageId}`);
      }
      if (stored.size !== file.size || stored.sha256 !== file.sha256) {
        throw new Error(
          `${name}: Convex stored ${stored.size} bytes with SHA-256 ${stored.sha256}, ` +
            `import sent ${file.size} bytes with SHA-256 ${file.sha256}`,
        );
      }
      const key = name;
      const found = await ctx.db
        .query(FILES_TABLE)
        .withIndex(FILES_PATH_INDEX, (q) => q.eq("key", key))
        .first();
      if (found === null) {
        await ctx.db.insert(FILES_TABLE, { key, ...file });
      } else {
        if (found.storageId !== file.storageId) {
          await ctx.storage.delete(found.storageId as GenericId<"_storage">);
        }
        await ctx.db.replace(idOf(found), { key, ...file });
      }
    }
    return null;
  },
});

/**
 * A stored file no migrated file records, with this SHA-256 and size, stored since `since` (ms):
 * the bytes a run killed after sending them and before recording them left behind. Import
 * records it instead of sending the bytes again. Reads only the files stored since then.
 */
export const findStored = internalQueryGeneric({
  args: { sha256: v.string(), size: v.number(), since: v.number() },
  handler: async (ctx, { sha256, size, since }) => {
    const recent = ctx.db.system
      .query("_storage")
      .withIndex("by_creation_time", (q) => q.gte("_creationTime", since));
    for await (const stored of recent) {
      if (stored.sha256 !== sha256 || stored.size !== size) {
        continue;
      }
      const recorded = await ctx.db
        .query(FILES_TABLE)
        .withIndex(FILES_STORAGE_INDEX, (q) => q.eq("storageId", stored._id))
        .first();
      if (recorded === null) {
        return stored._id;
      }
    }
    return null;
  },
});

/**
 * One page of the migrated files, each with what Convex keeps of its bytes (`stored`: size,
 * SHA-256 and content type of its `_storage` document; null when the file is gone): import
 * skips what is recorded, verify compares both with the source.
 */
export const filesPage = internalQueryGeneric({
  args: { cursor: v.union(v.string(), v.null()), numItems: v.number() },
  handler: async (ctx, { cursor, numItems }) => {
    const result = await ctx.db.query(FILES_TABLE).paginate({ cursor, numItems });
    const page = await Promise.all(
      result.page.map(async (doc) => {
        const { bucket, path, owner, storageId, size, contentType, sha256, version } = doc;
        const stored = await ctx.db.system.get(storageId as GenericId<"_storage">);
        return {
          bucket,
          path,
          owner,
          storageId,
          size,
          contentType,
          sha256,
          version: version ?? null,
          stored:
            stored === null
              ? null
              : {
                  size: stored.size,
                  sha256: stored.sha256,
                  contentType: stored.contentType ?? null,
                },
        };
      }),
    );
    return { page, isDone: result.isDone, continueCursor: result.continueCursor };
  },
});
"#;

// ── Removing migrated files: rollback and sync (docs/files.md, "Rollback" and "Sync") ──────────
// Kept apart from FILES_BODY, which it follows in the module (it uses its constants).

/// `removeFiles`: removes files a `migrateFiles` record names, each with its record (rollback;
/// sync, for objects gone from `storage.objects`).
const FILES_REMOVE_BODY: &str = r#"
/**
 * Removes migrated files: for each `{key, storageId}`, the record of `key` and its stored file,
 * when the record still names that storage id (a path recorded again since, with new bytes,
 * stays for the caller to list again). A file no `migrateFiles` record names is never touched.
 * Returns the keys whose record is gone now, removed by this call or before it: a call sent
 * twice (its reply lost) names each file again, and removes nothing twice.
 */
export const removeFiles = internalMutationGeneric({
  args: { files: v.array(v.object({ key: v.string(), storageId: v.id("_storage") })) },
  handler: async (ctx, { files }) => {
    const gone: string[] = [];
    for (const { key, storageId } of files) {
      const found = await ctx.db
        .query(FILES_TABLE)
        .withIndex(FILES_PATH_INDEX, (q) => q.eq("key", key))
        .first();
      if (found !== null && found.storageId !== storageId) {
        continue;
      }
      if (found !== null) {
        if ((await ctx.db.system.get(storageId)) !== null) {
          await ctx.storage.delete(storageId);
        }
        await ctx.db.delete(idOf(found));
      }
      gone.push(key);
    }
    return { gone };
  },
});
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableName;
    use crate::plan::model::{LegacyId, NullPolicy, OrphanPolicy, ReferencePlan};

    fn table(target: &str, legacy_id_field: &str, references: &[(&str, &str)]) -> TablePlan {
        TablePlan {
            source: TableName::new("public", target),
            target: target.to_owned(),
            legacy_id: LegacyId { field: legacy_id_field.to_owned(), columns: vec!["id".into()] },
            fields: Vec::new(),
            references: references
                .iter()
                .map(|(field, parent)| ReferencePlan {
                    constraint: format!("{field}_fkey"),
                    columns: vec![format!("{field}_column")],
                    field: (*field).to_owned(),
                    parent: TableName::new("public", *parent),
                    parent_target: (*parent).to_owned(),
                    orphans: OrphanPolicy::Fail,
                    optional: false,
                })
                .collect(),
            files: Vec::new(),
            filters: Vec::new(),
            merges: Vec::new(),
            nulls: NullPolicy::Omit,
            indexes: Default::default(),
            component: None,
        }
    }

    fn plan(tables: Vec<TablePlan>) -> Plan {
        Plan {
            tables,
            skipped: Vec::new(),
            hash: "blake3:0123abcd".into(),
            warnings: Vec::new(),
            files: None,
        }
    }

    /// A parent, a child referring to it, and a table referring to itself.
    fn small_plan() -> Plan {
        plan(vec![
            table("users", "legacyId", &[]),
            table("posts", "legacyId", &[("authorId", "users")]),
            table("comments", "oldId", &[("postId", "posts"), ("parentId", "comments")]),
        ])
    }

    fn plan_line(module: &str) -> &str {
        let mut lines = module.lines().filter(|line| line.starts_with(PLAN_LINE_PREFIX));
        let line = lines.next().expect("a plan line");
        assert!(lines.next().is_none(), "a second plan line");
        line
    }

    #[test]
    fn the_module_for_a_small_plan() {
        insta::assert_snapshot!(migrate_ts(&small_plan()));
    }

    #[test]
    fn the_plan_line_is_the_info_as_compact_json_in_plan_order() {
        let module = migrate_ts(&small_plan());
        let line = plan_line(&module);
        let json = line.strip_prefix(PLAN_LINE_PREFIX).unwrap().strip_suffix(';').unwrap();
        assert_eq!(
            json,
            r#"{"version":5,"planHash":"blake3:0123abcd","tables":{"users":{"legacyIdField":"legacyId","references":{}},"posts":{"legacyIdField":"legacyId","references":{"authorId":"users"}},"comments":{"legacyIdField":"oldId","references":{"postId":"posts","parentId":"comments"}}}}"#
        );
    }

    #[test]
    fn awkward_names_stay_on_the_plan_line() {
        let plan = plan(vec![table("a\nb", "legacy\u{2028}id", &[("x\"y", "a\nb")])]);
        let module = migrate_ts(&plan);
        let json = plan_line(&module).strip_prefix(PLAN_LINE_PREFIX).unwrap();
        let info: serde_json::Value =
            serde_json::from_str(json.strip_suffix(';').unwrap()).expect("the plan line is JSON");
        assert_eq!(info["tables"]["a\nb"]["legacyIdField"], "legacy\u{2028}id");
        assert_eq!(info["tables"]["a\nb"]["references"]["x\"y"], "a\nb");
        assert!(!json.contains('\u{2028}'), "{json}");
    }

    #[test]
    fn an_empty_plan_has_no_tables() {
        let module = migrate_ts(&plan(Vec::new()));
        assert!(plan_line(&module).ends_with(r#""tables":{}};"#), "{module}");
    }
}
