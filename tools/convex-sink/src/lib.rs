//! A fast in-memory stand-in for a Convex deployment running the generated `convex/migrate.ts`.
