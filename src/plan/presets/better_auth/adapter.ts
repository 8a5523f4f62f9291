// Better Auth's adapter functions over this component's schema (written by
// `migrate init --preset`). Better Auth writes through them, and so does `migrate import`: every
// document is checked by the schema's validators and Better Auth's unique fields. Once the app
// has its own auth options (convex/auth.ts in the Local Install guide), pass them here instead
// of the empty ones, so that the unique fields of its plugins are checked too.
import { createApi } from "@convex-dev/better-auth";
import schema from "./schema";

export const { create, findOne, findMany, updateOne, updateMany, deleteOne, deleteMany } =
  createApi(schema, () => ({}));
