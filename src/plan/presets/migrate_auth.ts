// Written by `migrate init --preset`: what Better Auth needs to accept the passwords the
// migration carried. Pass it as `emailAndPassword.password` in your `betterAuth({...})` options:
//
//   import { migratedPasswords } from "./migrateAuth";
//   betterAuth({
//     database: authComponent.adapter(ctx),
//     emailAndPassword: { enabled: true, password: migratedPasswords },
//     ...
//   });
//
// - bcrypt hashes (`$2a$`, `$2b$`, `$2y$`: Supabase's, and Auth0's) are checked with bcryptjs, a
//   bcrypt in plain JavaScript (native bcrypt does not load in Convex's runtime);
// - every other hash goes to Better Auth's own verifier (scrypt `salt:key`, its default);
// - `hash` is left out: new and changed passwords are hashed with Better Auth's default
//   (scrypt), so a user who resets a password moves off bcrypt.
// Hashes of other formats (argon2, Firebase scrypt) fail here: those users reset their password.
// Needs `npm install bcryptjs` in the app. The same BETTER_AUTH_SECRET as before must be set on
// the deployment (`npx convex env set BETTER_AUTH_SECRET ...`) for encrypted 2FA secrets and
// OAuth tokens.
import bcrypt from "bcryptjs";
import { verifyPassword } from "better-auth/crypto";

export const migratedPasswords = {
  verify: async ({ hash, password }: { hash: string; password: string }): Promise<boolean> =>
    /^\$2[aby]\$/.test(hash) ? bcrypt.compare(password, hash) : verifyPassword({ hash, password }),
};
