// Reads for `migrate import` and `migrate verify` (written by `migrate init --preset`): a
// document by legacy id through the `by_legacy_id` index, by id, and a page in creation order.
// Writes go through adapter.ts. A component's functions are never exposed to the internet: only
// the app's own functions (convex/migrate.ts, all internal) call these.
import { queryGeneric } from "convex/server";
import type { GenericDocument } from "convex/server";
import { v } from "convex/values";
import schema from "./schema";

const models = Object.keys(schema.tables);
const model = v.string();

function checked(name: string): string {
  if (!models.includes(name)) {
    throw new Error(`unknown table ${JSON.stringify(name)} of the betterAuth component`);
  }
  return name;
}

/** The document of `model` with each legacy id, null where there is none. */
export const find = queryGeneric({
  args: { model, legacyIds: v.array(v.string()) },
  handler: async (ctx, args) => {
    const table = checked(args.model);
    const found: (GenericDocument | null)[] = [];
    for (const legacyId of args.legacyIds) {
      const docs = await ctx.db
        .query(table)
        .withIndex("by_legacy_id", (q) => q.eq("legacyId", legacyId))
        .take(2);
      if (docs.length > 1) {
        throw new Error(`${table} ${legacyId}: 2 documents have this legacy id`);
      }
      found.push(docs[0] ?? null);
    }
    return found;
  },
});

/** The documents with these ids, null where an id is no document of `model`. */
export const getMany = queryGeneric({
  args: { model, ids: v.array(v.string()) },
  handler: async (ctx, args) => {
    const table = checked(args.model);
    const found: (GenericDocument | null)[] = [];
    for (const value of args.ids) {
      const id = ctx.db.normalizeId(table, value);
      found.push(id === null ? null : await ctx.db.get(id));
    }
    return found;
  },
});

/** A page of `model` in creation order, `from <= _creationTime < to` when given. */
export const page = queryGeneric({
  args: {
    model,
    cursor: v.union(v.string(), v.null()),
    numItems: v.number(),
    from: v.optional(v.number()),
    to: v.optional(v.number()),
  },
  handler: async (ctx, { cursor, numItems, from, to, ...args }) => {
    const table = checked(args.model);
    const result = await ctx.db
      .query(table)
      .withIndex("by_creation_time", (q) => {
        const low = from === undefined ? q : q.gte("_creationTime", from);
        return to === undefined ? low : low.lt("_creationTime", to);
      })
      .paginate({ cursor, numItems });
    return { page: result.page, isDone: result.isDone, continueCursor: result.continueCursor };
  },
});

/** The first and last `_creationTime` of `model` (null: it is empty). */
export const creationTimes = queryGeneric({
  args: { model },
  handler: async (ctx, args) => {
    const table = checked(args.model);
    const first = await ctx.db.query(table).withIndex("by_creation_time").order("asc").first();
    const last = await ctx.db.query(table).withIndex("by_creation_time").order("desc").first();
    return { first: first?._creationTime ?? null, last: last?._creationTime ?? null };
  },
});
