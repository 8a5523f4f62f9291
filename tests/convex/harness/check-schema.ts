// Runs a generated `convex/schema.ts` with Convex's own semantics (convex-test): inserts,
// patches and index lookups that must succeed, and documents the validators must refuse.
//
//   tsx harness/check-schema.ts <schema.ts> <steps.json>
//
// steps.json is `{"steps": [...]}`; documents are in Convex's tagged JSON encoding (`$integer`,
// `$bytes`, `$float`), and `{"$doc": "<name>"}` anywhere stands for the id of the document an
// earlier insert step named. Steps:
//   {"op": "insert", "name": "users#1", "table": "users", "doc": {...}}
//   {"op": "patch", "name": "users#1", "fields": {...}}
//   {"op": "reject", "table": "users", "doc": {...}, "error": "<substring of the error>"}
//   {"op": "lookup", "name": "users#1", "index": "by_legacy_id", "field": "legacyId",
//    "value": "1", "doc": {...}}   (the document read back, system fields aside)
// Prints one line per step (`ok …` or `FAIL …`) and exits with 1 when any step failed.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { makeFunctionReference } from "convex/server";
import { convexToJson, jsonToConvex } from "convex/values";
import type { JSONValue } from "convex/values";
import { convexTest } from "convex-test";

type Step =
  | { op: "insert"; name: string; table: string; doc: JSONValue }
  | { op: "patch"; name: string; fields: JSONValue }
  | { op: "reject"; table: string; doc: JSONValue; error: string }
  | { op: "lookup"; name: string; index: string; field: string; value: string; doc: JSONValue };

const [schemaPath, stepsPath] = process.argv.slice(2);
if (!schemaPath || !stepsPath) {
  console.error("usage: tsx harness/check-schema.ts <schema.ts> <steps.json>");
  process.exit(2);
}
const schema = (await import(pathToFileURL(resolve(schemaPath)).href)).default;
const { steps } = JSON.parse(readFileSync(stepsPath, "utf8")) as { steps: Step[] };

// convex-test finds the functions' root folder through a key containing `_generated`; that
// module is never loaded here, so it needs no content.
const t = convexTest(schema, {
  "./convex/_generated/server.ts": async () => ({}),
  "./convex/steps.ts": () => import("./steps.ts"),
});
const insert = makeFunctionReference<"mutation">("steps:insert");
const patch = makeFunctionReference<"mutation">("steps:patch");
const byLegacyId = makeFunctionReference<"query">("steps:byLegacyId");

const ids = new Map<string, { table: string; id: string }>();

function resolveIds(value: JSONValue): JSONValue {
  if (Array.isArray(value)) {
    return value.map(resolveIds);
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$doc") {
      const target = ids.get(value.$doc as string);
      if (target === undefined) {
        throw new Error(`no document named ${JSON.stringify(value.$doc)} was inserted`);
      }
      return target.id;
    }
    return Object.fromEntries(keys.map((k) => [k, resolveIds(value[k])]));
  }
  return value;
}

/** JSON text with object keys sorted, for comparing documents. */
function canonical(value: JSONValue): string {
  if (Array.isArray(value)) {
    return `[${value.map(canonical).join(",")}]`;
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let failures = 0;
for (const [index, step] of steps.entries()) {
  const label = `step ${index + 1} ${step.op}`;
  try {
    switch (step.op) {
      case "insert": {
        const doc = jsonToConvex(resolveIds(step.doc));
        const id = (await t.mutation(insert, { table: step.table, doc })) as string;
        ids.set(step.name, { table: step.table, id });
        console.log(`ok ${label} ${step.name}`);
        break;
      }
      case "patch": {
        const target = ids.get(step.name);
        if (target === undefined) {
          throw new Error(`no document named ${JSON.stringify(step.name)} was inserted`);
        }
        const fields = jsonToConvex(resolveIds(step.fields));
        await t.mutation(patch, { table: target.table, id: target.id, fields });
        console.log(`ok ${label} ${step.name}`);
        break;
      }
      case "reject": {
        const doc = jsonToConvex(resolveIds(step.doc));
        let error: string | undefined;
        try {
          await t.mutation(insert, { table: step.table, doc });
        } catch (e) {
          error = message(e);
        }
        if (error === undefined) {
          throw new Error(`accepted ${JSON.stringify(step.doc)}`);
        }
        if (!error.includes(step.error)) {
          throw new Error(`expected an error containing ${JSON.stringify(step.error)}, got: ${error}`);
        }
        console.log(`ok ${label} ${step.table}: ${error.split("\n")[0]}`);
        break;
      }
      case "lookup": {
        const target = ids.get(step.name);
        if (target === undefined) {
          throw new Error(`no document named ${JSON.stringify(step.name)} was inserted`);
        }
        const found = (await t.query(byLegacyId, {
          table: target.table,
          index: step.index,
          field: step.field,
          value: step.value,
        })) as Record<string, unknown> | null;
        if (found === null) {
          throw new Error(`${step.index} finds no document for ${JSON.stringify(step.value)}`);
        }
        const { _id, _creationTime, ...fields } = found;
        if (_id !== target.id) {
          throw new Error(`${step.index} finds ${String(_id)}, not ${target.id}`);
        }
        const got = canonical(convexToJson(fields as Record<string, never>));
        const want = canonical(resolveIds(step.doc));
        if (got !== want) {
          throw new Error(`read back ${got}, expected ${want}`);
        }
        console.log(`ok ${label} ${step.name}`);
        break;
      }
      default:
        throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${label}: ${message(e)}`);
  }
}
console.log(`${steps.length - failures} of ${steps.length} steps ok`);
process.exit(failures === 0 ? 0 : 1);
