// Written by `migrate init --preset` because the app had no convex.config.ts: mounts the Better
// Auth component installed locally in convex/betterAuth/. It is yours once edited.
import { defineApp } from "convex/server";
import betterAuth from "./betterAuth/convex.config";

const app = defineApp();
app.use(betterAuth);

export default app;
