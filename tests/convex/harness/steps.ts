// The writes a check script sends through convex-test, as internal mutations: the same path
// (function call, argument encoding, schema validation) the generated `migrate.ts` will take.
import { internalMutationGeneric, internalQueryGeneric } from "convex/server";
import { v } from "convex/values";
import type { GenericId } from "convex/values";

export const insert = internalMutationGeneric({
  args: { table: v.string(), doc: v.any() },
  handler: async (ctx, { table, doc }) => await ctx.db.insert(table, doc),
});

export const patch = internalMutationGeneric({
  args: { table: v.string(), id: v.string(), fields: v.any() },
  handler: async (ctx, { table, id, fields }) => {
    await ctx.db.patch(table, id as GenericId<string>, fields);
  },
});

export const byLegacyId = internalQueryGeneric({
  args: { table: v.string(), index: v.string(), field: v.string(), value: v.string() },
  handler: async (ctx, { table, index, field, value }) =>
    await ctx.db
      .query(table)
      .withIndex(index, (q) => q.eq(field, value))
      .unique(),
});
