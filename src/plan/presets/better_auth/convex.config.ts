// The Better Auth component, installed locally (written by `migrate init --preset`): the app's
// convex/convex.config.ts mounts it with `app.use(betterAuth)`.
import { defineComponent } from "convex/server";

const component = defineComponent("betterAuth");

export default component;
