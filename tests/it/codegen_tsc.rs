//! The generated `convex/schema.ts` and `convex/migrate.ts` typecheck with `tsc --noEmit` against
//! the real `convex` package, and tsc really checks: a broken file fails.

use std::process::Command;

use migrate::plan::codegen::migrate_tables_ts;

use migrate::plan::{Conversion, NullPolicy, Plan};

use crate::codegen_support::{
    ConvexApp, array, convex_tool, convex_tools, every_conversion_plan, field, labels, optional,
    printed, run, table,
};

#[test]
fn the_generated_schema_and_module_typecheck() {
    // GIVEN the schema and the module of a plan using every conversion, cycle and orphan policy
    let app = ConvexApp::new("tsc");
    app.write_generated(&every_conversion_plan());
    // and a module that reads documents back through the schema's types, and holds the module's
    // functions as internal ones (a public function would not fit)
    app.write(
        "convex/usage.ts",
        r#"import type { DataModelFromSchemaDefinition } from "convex/server";
import type { RegisteredMutation, RegisteredQuery } from "convex/server";
import type { GenericId } from "convex/values";
import schema from "./schema";
import { get, info, page, patchRefs, remove, upsert } from "./migrate";

export const mutations: RegisteredMutation<"internal", any, any>[] = [upsert, patchRefs, remove];
export const queries: RegisteredQuery<"internal", any, any>[] = [info, page, get];

type Doc<T extends keyof DataModelFromSchemaDefinition<typeof schema>> =
  DataModelFromSchemaDefinition<typeof schema>[T]["document"];

export function check(all: Doc<"allTypes">, person: Doc<"people">, team: Doc<"teams">) {
  const big: bigint = all.big;
  const ratio: number = all.ratio;
  const mood: "sad" | "ok" | "happy" = all.mood;
  const blob: ArrayBuffer = all.blob;
  const owner: GenericId<"people"> = all.ownerId;
  const reviewer: GenericId<"people"> | undefined = all.reviewerId;
  const nickname: string | null = person.nickname;
  const mentor: GenericId<"people"> | string | undefined = person.mentorId;
  const lead: GenericId<"people"> | undefined = team.leadId;
  const theme: "light" | "dark" | undefined = team.theme;
  const tags: (string | null)[] = all.tags;
  const code: string = all.code;
  const fullName: string | undefined = all.fullName;
  const age: number | undefined = all.age;
  const admin: boolean | undefined = all.admin;
  return [big, ratio, mood, blob, owner, reviewer, nickname, mentor, lead, theme, tags, code,
    fullName, age, admin];
}

// The same fields assigned to a type each one must not fit: every line fails, so a field typed
// `any` (which fits everything) leaves its @ts-expect-error unused, and tsc fails with TS2578.
export function mismatch(all: Doc<"allTypes">, person: Doc<"people">, team: Doc<"teams">) {
  // @ts-expect-error an int64 is a bigint, not a number
  const big: number = all.big;
  // @ts-expect-error a float64 is a number, not a bigint
  const ratio: bigint = all.ratio;
  // @ts-expect-error "happy" is one of the labels
  const mood: "sad" | "ok" = all.mood;
  // @ts-expect-error bytes are an ArrayBuffer, not a string
  const blob: string = all.blob;
  // @ts-expect-error the owner is a person, not a team
  const owner: GenericId<"teams"> = all.ownerId;
  // @ts-expect-error the reviewer is optional
  const reviewer: GenericId<"people"> = all.reviewerId;
  // @ts-expect-error the nickname may be null
  const nickname: string = person.nickname;
  // @ts-expect-error an orphaned mentor keeps its legacy id, a string
  const mentor: GenericId<"people"> | undefined = person.mentorId;
  // @ts-expect-error the lead is optional (it lies on a cycle)
  const lead: GenericId<"people"> = team.leadId;
  // @ts-expect-error the theme comes from a merge and may be missing
  const theme: "light" | "dark" = team.theme;
  // @ts-expect-error a tag may be null
  const tags: string[] = all.tags;
  // @ts-expect-error a trimmed char(n) is a string
  const code: number = all.code;
  // @ts-expect-error a field inside json is absent when its key is missing
  const fullName: string = all.fullName;
  // @ts-expect-error the age inside json is declared a number
  const age: string | undefined = all.age;
  // @ts-expect-error admin inside json is declared a boolean
  const admin: string | undefined = all.admin;
  return [big, ratio, mood, blob, owner, reviewer, nickname, mentor, lead, theme, tags, code,
    fullName, age, admin];
}
"#,
    );

    // WHEN tsc checks the app
    let output = app.typecheck();

    // THEN it finds nothing
    assert!(output.status.success(), "tsc rejected the generated files:\n{}", printed(&output));
}

#[test]
fn tsc_rejects_a_broken_schema() {
    // GIVEN a schema calling a validator that does not exist
    let app = ConvexApp::new("tsc-broken");
    app.write_generated(&every_conversion_plan());
    let broken =
        migrate_tables_ts(&every_conversion_plan()).replacen("v.string()", "v.notAFunction()", 1);
    app.write("convex/migrateTables.ts", &broken);

    // WHEN tsc checks the app
    let output = app.typecheck();

    // THEN it fails, naming the culprit
    assert!(!output.status.success(), "tsc accepted a broken schema:\n{}", printed(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("notAFunction"),
        "tsc failed for another reason:\n{}",
        printed(&output)
    );
}

#[test]
fn tsc_rejects_an_apps_table_that_the_migrated_tables_redefine() {
    // GIVEN an app schema that writes out a table the migrated tables also define, then
    // spreads them as init says (last)
    let app = ConvexApp::new("tsc-collision");
    app.write_generated(&every_conversion_plan());
    app.write(
        "convex/schema.ts",
        r#"import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
import { migrateTables } from "./migrateTables";

export default defineSchema({
  teams: defineTable({ name: v.string() }),
  ...migrateTables,
});
"#,
    );

    // WHEN tsc checks the app
    let output = app.typecheck();

    // THEN it refuses the table defined twice (TS2783: "specified more than once")
    assert!(!output.status.success(), "tsc accepted a table defined twice:\n{}", printed(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("TS2783") && stdout.contains("'teams'"), "{}", printed(&output));
}

#[test]
fn the_convex_test_harness_typechecks() {
    // GIVEN the committed harness that runs generated schemas under convex-test
    let harness = convex_tools().join("harness");

    // WHEN tsc checks it against the installed convex and convex-test
    let output = run(Command::new(convex_tool("tsc")).arg("--noEmit").arg("-p").arg(harness));

    // THEN it finds nothing
    assert!(output.status.success(), "the harness does not typecheck:\n{}", printed(&output));
}

#[test]
fn awkward_names_and_labels_stay_valid_typescript() {
    // GIVEN names and labels that need quoting or escaping, and an enum without labels
    let mut t = table("Order\u{2028}Items\n", NullPolicy::Null);
    t.target = "orderItems".to_owned();
    t.legacy_id.field = "legacy id".to_owned();
    t.fields = vec![
        field("a\u{2029}b", "__proto__", Conversion::String),
        field("c", "9lives", Conversion::String),
        field(
            "d",
            "constructor",
            labels(&["it's", "say \"hi\"", "back\\slash", "new\nline", "`${x}`"]),
        ),
        field("e", "never", labels(&[])),
        optional(field("f", "maybeNever", array(labels(&[])))),
    ];
    let plan = Plan {
        tables: vec![t],
        skipped: Vec::new(),
        hash: "blake3:x".to_owned(),
        warnings: Vec::new(),
        files: None,
    };
    let app = ConvexApp::new("tsc-awkward");
    app.write_generated(&plan);
    // and a module checking that the keys and labels arrived as they are
    app.write(
        "convex/usage.ts",
        r#"import type { DataModelFromSchemaDefinition } from "convex/server";
import schema from "./schema";

type Doc = DataModelFromSchemaDefinition<typeof schema>["orderItems"]["document"];

export function check(doc: Doc) {
  const legacy: string = doc["legacy id"];
  const nine: string = doc["9lives"];
  const label: "it's" | 'say "hi"' | "back\\slash" | "new\nline" | "`${x}`" = doc.constructor;
  const never: never = doc.never;
  const maybe: null[] | null = doc.maybeNever;
  return [legacy, nine, label, never, maybe];
}

// Each line fails, so a key typed `any` leaves its @ts-expect-error unused (TS2578). (`never`
// needs no such line: it fits every type, and `any` does not fit it.)
export function mismatch(doc: Doc) {
  // @ts-expect-error the legacy id is a string
  const legacy: number = doc["legacy id"];
  // @ts-expect-error a string field
  const nine: number = doc["9lives"];
  // @ts-expect-error every label is possible
  const label: "it's" = doc.constructor;
  // @ts-expect-error an array of no label holds only nulls
  const maybe: string[] | null = doc.maybeNever;
  return [legacy, nine, label, maybe];
}
"#,
    );

    // WHEN tsc checks the app
    let output = app.typecheck();

    // THEN it finds nothing
    assert!(output.status.success(), "tsc rejected the generated files:\n{}", printed(&output));
}
