//! Auth presets end to end (docs/auth-presets.md): Supabase's real `auth` schema with users of
//! every kind → `migrate init --preset supabase-to-better-auth` → export, transform, import and
//! verify into convex-test with the Better Auth component registered (installed locally, as the
//! preset writes it) → sign in through Better Auth itself, running in that runtime.

use std::path::Path;

use migrate::convex::client::FunctionKind;
use serde_json::{Value, json};

use crate::codegen_support::{ConvexApp, printed};
use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{Prepared, call};
use crate::support::{TestDb, Workdir, jsonl, utf8};

/// Supabase's auth schema as its auth server creates it (tests/fixtures, a copy of the shared
/// fixture).
const AUTH_SCHEMA: &str = include_str!("../fixtures/supabase-auth-schema.sql");

/// `correct horse` and `hunter2hunter2` under bcrypt cost 10, `$2a$` as Supabase (Go) writes it.
const ADA_HASH: &str = "$2a$10$NE1Tz1P92rP7FAZSJMweD.OA2QsSGlIDJwl1YLaWnHFfDIRSTWd4O";
const BOB_HASH: &str = "$2a$10$xL2esMFl7ifNOWY3mf6SfeyLigDZnk4hydAD3b0xH9Nh3vg0VmeXi";

const ADA: &str = "00000000-0000-0000-0000-00000000000a";
const BOB: &str = "00000000-0000-0000-0000-00000000000b";
const PHONE: &str = "00000000-0000-0000-0000-00000000000c";
const ANON: &str = "00000000-0000-0000-0000-00000000000d";
const GONE: &str = "00000000-0000-0000-0000-00000000000e";

/// Users with a password (Ada also with GitHub), with GitHub only (Bob's password is his
/// too), phone-only, anonymous and deleted; identities as GoTrue writes them (an `email`
/// identity per email user); an MFA factor; a session; the app's profiles and todos.
fn supabase_rows() -> String {
    format!(
        "
create table public.profiles (
  id uuid primary key references auth.users(id),
  username text not null
);
create table public.todos (
  id int primary key,
  user_id uuid not null references auth.users(id),
  title text not null
);
insert into auth.users (id, email, encrypted_password, email_confirmed_at, raw_user_meta_data,
                        phone, phone_confirmed_at, is_anonymous, deleted_at, created_at, updated_at)
values
  ('{ADA}', 'ada@example.com', '{ADA_HASH}', '2024-01-02 10:00:00+00',
   '{{\"full_name\": \"Ada Lovelace\", \"avatar_url\": \"https://example.com/ada.png\"}}',
   null, null, false, null, '2024-01-01 10:00:00+00', '2024-01-03 10:00:00+00'),
  ('{BOB}', 'bob@example.com', '{BOB_HASH}', null, '{{}}',
   null, null, false, null, '2024-02-01 10:00:00+00', '2024-02-01 10:00:00+00'),
  ('{PHONE}', null, '', null, '{{}}',
   '15550100', '2024-03-02 10:00:00+00', false, null, '2024-03-01 10:00:00+00', null),
  ('{ANON}', null, '', null, null,
   null, null, true, null, '2024-04-01 10:00:00+00', '2024-04-01 10:00:00+00'),
  ('{GONE}', 'gone@example.com', '{BOB_HASH}', null, '{{}}',
   null, null, false, '2024-05-02 10:00:00+00', '2024-05-01 10:00:00+00', '2024-05-01 10:00:00+00');
insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
values
  ('{ADA}', '{ADA}', '{{\"sub\": \"{ADA}\", \"email\": \"ada@example.com\"}}', 'email',
   '2024-01-01 10:00:00+00', '2024-01-01 10:00:00+00'),
  ('9001', '{ADA}', '{{\"sub\": \"9001\"}}', 'github',
   '2024-01-05 10:00:00+00', '2024-01-05 10:00:00+00'),
  ('{BOB}', '{BOB}', '{{\"sub\": \"{BOB}\", \"email\": \"bob@example.com\"}}', 'email',
   '2024-02-01 10:00:00+00', '2024-02-01 10:00:00+00'),
  ('g-77', '{BOB}', '{{\"sub\": \"g-77\"}}', 'google',
   '2024-02-01 10:00:00+00', '2024-02-01 10:00:00+00'),
  ('{PHONE}', '{PHONE}', '{{\"sub\": \"{PHONE}\"}}', 'phone',
   '2024-03-01 10:00:00+00', '2024-03-01 10:00:00+00'),
  ('4242', '{GONE}', '{{\"sub\": \"4242\"}}', 'github',
   '2024-05-01 10:00:00+00', '2024-05-01 10:00:00+00');
insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at,
                              updated_at, secret)
values ('00000000-0000-0000-0000-0000000000f1', '{ADA}', 'phone app', 'totp', 'verified',
        now(), now(), 'JBSWY3DPEHPK3PXP');
insert into auth.sessions (id, user_id, created_at, updated_at)
values ('00000000-0000-0000-0000-0000000000e1', '{ADA}', now(), now());
insert into public.profiles values ('{ADA}', 'ada'), ('{BOB}', 'bob');
insert into public.todos values (1, '{ADA}', 'analytical engine'), (2, '{BOB}', 'groceries');
"
    )
}

/// An app module that runs Better Auth in the Convex runtime, over the component the preset
/// installed, with the password verifier the preset wrote.
const SIGN_IN: &str = r#"
import { actionGeneric, componentsGeneric } from "convex/server";
import { v } from "convex/values";
import { betterAuth } from "better-auth";
import { createClient } from "@convex-dev/better-auth";
import { migratedPasswords } from "./migrateAuth";

const components = componentsGeneric() as any;
const authComponent = createClient(components.betterAuth);

function auth(ctx: any) {
  return betterAuth({
    database: authComponent.adapter(ctx),
    baseURL: "http://localhost:3000",
    secret: "a-test-secret-that-is-long-enough-0123456789",
    emailAndPassword: { enabled: true, password: migratedPasswords },
    logger: { disabled: true },
  });
}

/** Better Auth's own email sign-in: the user's id and a session token, or the error. */
export const signIn = actionGeneric({
  args: { email: v.string(), password: v.string() },
  handler: async (ctx, { email, password }) => {
    try {
      const result = await auth(ctx).api.signInEmail({ body: { email, password } });
      return { ok: true, user: result.user.id, token: typeof result.token === "string" };
    } catch (e) {
      return { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
  },
});

/** Better Auth's own lookup of a linked account by provider and the provider's account id. */
export const linkedAccount = actionGeneric({
  args: { providerId: v.string(), accountId: v.string() },
  handler: async (ctx, { providerId, accountId }) => {
    const context = await auth(ctx).$context;
    const account = await context.internalAdapter.findAccountByProviderId(accountId, providerId);
    if (account === null) {
      return null;
    }
    const user = await context.internalAdapter.findUserById(account.userId);
    return { userId: account.userId, email: user?.email ?? null };
  },
});
"#;

fn sign_in(server: &ConvexTestServer, email: &str, password: &str) -> Value {
    let args = json!({ "email": email, "password": password });
    call(server, FunctionKind::Action, "signIn:signIn", args)
}

fn page(server: &ConvexTestServer, table: &str) -> Vec<Value> {
    let args = json!({ "table": table, "cursor": null, "numItems": 100 });
    let found = call(server, FunctionKind::Query, "migrate:page", args);
    found["page"].as_array().unwrap().clone()
}

fn transformed(work: &Workdir, table: &str) -> Vec<Value> {
    jsonl(&work.data_dir().join(format!("transformed/{table}.jsonl")))
}

/// Copies the `.ts` files under `from` into the scratch app's folder `to`.
fn copy_ts(from: &Path, app: &ConvexApp, to: &str) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            copy_ts(&path, app, &format!("{to}/{name}"));
        } else if name.ends_with(".ts") {
            app.write(&format!("{to}/{name}"), &read(&path));
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn supabase_users_sign_in_with_their_passwords_after_the_move() {
    // GIVEN Supabase's real auth schema with users of every kind, identities, an MFA factor, a
    // session, and the app's tables referring to the users
    let db = TestDb::with(&format!("{AUTH_SCHEMA}\n{}", supabase_rows()));
    let work = Workdir::new();
    work.export(db.url(), &["--schemas", "public,auth"]).success();
    let prepared = Prepared { work, _db: db };
    let convex_dir = prepared.convex_dir();

    // WHEN the preset is written and the data transformed
    let init = prepared
        .migrate(&[
            "init",
            "--preset",
            "supabase-to-better-auth",
            "--convex-dir",
            utf8(&convex_dir),
        ])
        .success();
    let preset = read(&prepared.plan_dir().join("0002_supabase_to_better_auth.toml"));
    assert!(preset.contains("[tables.\"auth.sessions\"]\nskip = true"), "{preset}");
    for file in ["betterAuth/schema.ts", "betterAuth/adapter.ts", "migrateAuth.ts"] {
        assert!(convex_dir.join(file).exists(), "{file}\n{init}");
    }
    let tables = read(&convex_dir.join("migrateTables.ts"));
    assert!(
        !tables.contains("  user: defineTable"),
        "a component table is not the app's: {tables}"
    );
    assert!(tables.contains("userId: v.string()"), "{tables}");
    let transform = prepared.migrate(&["transform"]).success();

    // THEN hash formats are counted and what is left behind is said
    let out = transform.to_string();
    assert!(out.contains("`user`: password hashes: bcrypt 2, none 2"), "{out}");
    assert!(out.contains("`auth.mfa_factors`: 1 MFA factors were not carried"), "{out}");
    assert!(out.contains("`auth.sessions`: 1 sessions were not carried"), "{out}");
    // … the users are Better Auth users (the deleted one filtered)
    let users = transformed(&prepared.work, "user");
    assert_eq!(users.len(), 4, "{users:?}");
    let user = |id: &str| users.iter().find(|u| u["doc"]["legacyId"] == id).unwrap()["doc"].clone();
    assert_eq!(user(ADA)["name"], "Ada Lovelace");
    assert_eq!(user(ADA)["image"], "https://example.com/ada.png");
    assert_eq!(user(ADA)["emailVerified"], true);
    assert_eq!(user(ADA)["credentialPassword"], ADA_HASH);
    assert_eq!(user(BOB)["emailVerified"], false);
    assert_eq!(user(PHONE)["email"], "phone-15550100@phone.invalid");
    assert_eq!(user(PHONE)["phoneNumberVerified"], true);
    assert!(user(PHONE).get("credentialPassword").is_none());
    assert_eq!(user(ANON)["isAnonymous"], true);
    // … and only OAuth identities become accounts (the deleted user's dropped with it)
    let accounts = transformed(&prepared.work, "account");
    let providers: Vec<&str> =
        accounts.iter().map(|a| a["doc"]["providerId"].as_str().unwrap()).collect();
    assert_eq!(providers.len(), 2, "{accounts:?}");
    assert!(providers.contains(&"github") && providers.contains(&"google"), "{providers:?}");

    // AND the Convex folder typechecks: the component installed locally, the generated module
    // calling it, the password verifier, and an app module using Better Auth over them
    std::fs::write(convex_dir.join("signIn.ts"), SIGN_IN).unwrap();
    let app = ConvexApp::new("auth-presets-tsc");
    copy_ts(&convex_dir, &app, "convex");
    let output = app.typecheck();
    assert!(output.status.success(), "tsc refused the preset's files:\n{}", printed(&output));

    // WHEN it is imported into the Convex runtime with the component registered, and verified
    let server = ConvexTestServer::for_convex_dir(&convex_dir);
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    let verify = prepared.against(&url, &key, &["verify"]).success();
    assert!(verify.to_string().contains("verified: Convex holds exactly"), "{verify}");
    // … and sending everything again (no checkpoints) updates the same documents through the
    // component, the credential accounts included: nothing doubles, verify still holds
    std::fs::remove_file(prepared.data_path("state.sqlite")).unwrap();
    let again = prepared.against(&url, &key, &["--format", "json", "import"]).success();
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    let users = again["tables"].as_array().unwrap().iter().find(|t| t["table"] == "user").unwrap();
    assert_eq!((&users["inserted"], &users["replaced"]), (&json!(0), &json!(4)), "{again}");
    let verify = prepared.against(&url, &key, &["verify"]).success();
    assert!(verify.to_string().contains("verified: Convex holds exactly"), "{verify}");
    assert_eq!(page(&server, "user").len(), 4);
    assert_eq!(page(&server, "account").len(), 2, "credential accounts are read with their user");

    // THEN Ada signs in with her bcrypt password through Better Auth, and not with another
    let ada = sign_in(&server, "ada@example.com", "correct horse");
    assert_eq!(ada["ok"], true, "{ada}\n{}", server.stderr());
    assert_eq!(ada["token"], true, "{ada}");
    let wrong = sign_in(&server, "ada@example.com", "incorrect horse");
    assert_eq!(wrong["ok"], false, "{wrong}");
    let bob = sign_in(&server, "bob@example.com", "hunter2hunter2");
    assert_eq!(bob["ok"], true, "{bob}");
    // … the deleted user does not exist any more
    let gone = sign_in(&server, "gone@example.com", "hunter2hunter2");
    assert_eq!(gone["ok"], false, "{gone}");
    // … Ada's GitHub account is found by provider and account id, and leads to her
    let args = json!({ "providerId": "github", "accountId": "9001" });
    let linked = call(&server, FunctionKind::Action, "signIn:linkedAccount", args);
    assert_eq!(linked["userId"], ada["user"], "{linked}");
    assert_eq!(linked["email"], "ada@example.com");
    // … and the app's rows refer to the migrated users
    let profile = page(&server, "profiles").into_iter().find(|p| p["username"] == "ada").unwrap();
    assert_eq!(profile["userId"], ada["user"], "{profile}");
    let todo = page(&server, "todos").into_iter().find(|t| t["title"] == "groceries").unwrap();
    assert_eq!(todo["userId"], bob["user"], "{todo}");

    // AND rolling a user back (`migrate:remove`) takes the credential account with it
    let args = json!({ "table": "user", "legacyIds": [BOB] });
    let removed = call(&server, FunctionKind::Mutation, "migrate:remove", args);
    assert_eq!(removed["deleted"], 1, "{removed}");
    let args = json!({ "table": "user", "legacyIds": [BOB, ADA] });
    let found = call(&server, FunctionKind::Query, "migrate:get", args);
    assert!(found[0].is_null() && found[1]["email"] == "ada@example.com", "{found}");
    let again = sign_in(&server, "bob@example.com", "hunter2hunter2");
    assert_eq!(again["ok"], false, "{again}");
    let args = json!({ "providerId": "credential", "accountId": bob["user"] });
    let credential = call(&server, FunctionKind::Action, "signIn:linkedAccount", args);
    assert!(credential.is_null(), "{credential}");
}

/// A Better Auth schema on Postgres as its CLI (`npx @better-auth/cli migrate`, better-auth 1.6
/// with the organization, twoFactor and apiKey plugins) creates it: quoted camelCase columns,
/// text ids, a table named "user"; and an app table referring to the user.
const BETTER_AUTH_SCHEMA: &str = r#"
create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" boolean not null, "image" text, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz default CURRENT_TIMESTAMP not null, "twoFactorEnabled" boolean);
create table "session" ("id" text not null primary key, "expiresAt" timestamptz not null, "token" text not null unique, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade, "activeOrganizationId" text);
create table "account" ("id" text not null primary key, "accountId" text not null, "providerId" text not null, "userId" text not null references "user" ("id") on delete cascade, "accessToken" text, "refreshToken" text, "idToken" text, "accessTokenExpiresAt" timestamptz, "refreshTokenExpiresAt" timestamptz, "scope" text, "password" text, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz not null);
create table "verification" ("id" text not null primary key, "identifier" text not null, "value" text not null, "expiresAt" timestamptz not null, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz default CURRENT_TIMESTAMP not null);
create table "organization" ("id" text not null primary key, "name" text not null, "slug" text not null unique, "logo" text, "createdAt" timestamptz not null, "metadata" text);
create table "member" ("id" text not null primary key, "organizationId" text not null references "organization" ("id") on delete cascade, "userId" text not null references "user" ("id") on delete cascade, "role" text not null, "createdAt" timestamptz not null);
create table "invitation" ("id" text not null primary key, "organizationId" text not null references "organization" ("id") on delete cascade, "email" text not null, "role" text, "status" text not null, "expiresAt" timestamptz not null, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "inviterId" text not null references "user" ("id") on delete cascade);
create table "twoFactor" ("id" text not null primary key, "secret" text not null, "backupCodes" text not null, "userId" text not null references "user" ("id") on delete cascade);
create table "apikey" ("id" text not null primary key, "configId" text default 'default' not null, "name" text, "start" text, "referenceId" text not null, "prefix" text, "key" text not null, "refillInterval" integer, "refillAmount" integer, "lastRefillAt" timestamptz, "enabled" boolean default true, "rateLimitEnabled" boolean default true, "rateLimitTimeWindow" integer default 86400000, "rateLimitMax" integer default 10, "requestCount" integer default 0, "remaining" integer, "lastRequest" timestamptz, "expiresAt" timestamptz, "createdAt" timestamptz not null, "updatedAt" timestamptz not null, "permissions" text, "metadata" text);
create index "session_userId_idx" on "session" ("userId");
create index "account_userId_idx" on "account" ("userId");
create index "verification_identifier_idx" on "verification" ("identifier");
create index "member_organizationId_idx" on "member" ("organizationId");
create index "member_userId_idx" on "member" ("userId");
create index "invitation_organizationId_idx" on "invitation" ("organizationId");
create index "invitation_email_idx" on "invitation" ("email");
create index "twoFactor_secret_idx" on "twoFactor" ("secret");
create index "twoFactor_userId_idx" on "twoFactor" ("userId");
create index "apikey_configId_idx" on "apikey" ("configId");
create index "apikey_referenceId_idx" on "apikey" ("referenceId");
create index "apikey_key_idx" on "apikey" ("key");
create table "todos" ("id" int primary key, "userId" text not null references "user" ("id"), "title" text not null);
"#;

/// `correct horse` under Better Auth's default scrypt (`salt:key`, hex).
const CAROL_HASH: &str = "65c18bfb6c485356cf3687da83862574:10c2821d5cb6c39e288f25f02a91685bf3808943f01aa3d2351d6a1b8a879d0fdee8a376259e4006f35870a4967972d39f196e3f4939ab6990c585cf28a3fcee";

fn better_auth_rows() -> String {
    format!(
        r#"
insert into "user" values
  ('usr_carol', 'Carol', 'Carol@Example.com', true, null, '2024-01-01 10:00:00+00', '2024-01-02 10:00:00+00', true),
  ('usr_dave', 'Dave', 'dave@example.com', false, 'https://example.com/d.png', '2024-02-01 10:00:00+00', '2024-02-01 10:00:00+00', null);
insert into "account" ("id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt") values
  ('acc_1', 'usr_carol', 'credential', 'usr_carol', '{CAROL_HASH}', '2024-01-01 10:00:00+00', '2024-01-01 10:00:00+00');
insert into "account" ("id", "accountId", "providerId", "userId", "accessToken", "scope", "createdAt", "updatedAt") values
  ('acc_2', '31337', 'github', 'usr_dave', 'encrypted-token', 'read:user', '2024-02-01 10:00:00+00', '2024-02-01 10:00:00+00');
insert into "session" values
  ('ses_1', '2030-01-01 00:00:00+00', 'tok_1', now(), now(), null, null, 'usr_carol', 'org_1');
insert into "verification" values ('ver_1', 'reset', 'x', '2030-01-01 00:00:00+00', now(), now());
insert into "organization" values ('org_1', 'Acme', 'acme', null, '2024-01-01 10:00:00+00', '{{"plan":"pro"}}');
insert into "member" values
  ('mem_1', 'org_1', 'usr_carol', 'owner', '2024-01-01 10:00:00+00'),
  ('mem_2', 'org_1', 'usr_dave', 'member', '2024-02-01 10:00:00+00');
insert into "invitation" values
  ('inv_1', 'org_1', 'erin@example.com', 'member', 'pending', '2030-01-01 00:00:00+00', '2024-03-01 10:00:00+00', 'usr_carol');
insert into "twoFactor" values ('tf_1', 'encrypted-secret', 'encrypted-codes', 'usr_carol');
insert into "apikey" ("id", "name", "referenceId", "key", "createdAt", "updatedAt") values
  ('key_1', 'ci', 'usr_dave', 'hashed-key', '2024-02-01 10:00:00+00', '2024-02-01 10:00:00+00');
insert into "todos" values (1, 'usr_dave', 'ship it'), (2, 'usr_carol', 'review');
"#
    )
}

#[test]
fn better_auth_users_keep_signing_in_and_their_organizations_follow() {
    // GIVEN a Better Auth schema on Postgres with the organization, twoFactor and apiKey
    // plugins, users with a scrypt password and a GitHub account, and an app table
    let db = TestDb::with(&format!("{BETTER_AUTH_SCHEMA}\n{}", better_auth_rows()));
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    let prepared = Prepared { work, _db: db };
    let convex_dir = prepared.convex_dir();

    // WHEN the preset is written, and the data transformed, imported and verified
    prepared
        .migrate(&["init", "--preset", "better-auth", "--convex-dir", utf8(&convex_dir)])
        .success();
    let transform = prepared.migrate(&["transform"]).success().to_string();
    assert!(transform.contains("`account`: password hashes: scrypt 1"), "{transform}");
    let users = transformed(&prepared.work, "user");
    let carol = users.iter().find(|u| u["doc"]["legacyId"] == "usr_carol").unwrap();
    assert_eq!(carol["doc"]["email"], "carol@example.com", "the email is lowercased");
    std::fs::write(convex_dir.join("signIn.ts"), SIGN_IN).unwrap();
    let server = ConvexTestServer::for_convex_dir(&convex_dir);
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    let verify = prepared.against(&url, &key, &["verify"]).success();
    assert!(verify.to_string().contains("verified: Convex holds exactly"), "{verify}");

    // THEN Carol signs in with her scrypt password through Better Auth, not with another
    let carol = sign_in(&server, "carol@example.com", "correct horse");
    assert_eq!(carol["ok"], true, "{carol}\n{}", server.stderr());
    let wrong = sign_in(&server, "carol@example.com", "correct battery");
    assert_eq!(wrong["ok"], false, "{wrong}");
    // … Dave's GitHub account is found by provider and account id, and leads to him
    let args = json!({ "providerId": "github", "accountId": "31337" });
    let linked = call(&server, FunctionKind::Action, "signIn:linkedAccount", args);
    assert_eq!(linked["email"], "dave@example.com", "{linked}");
    let dave = linked["userId"].clone();
    // … and Carol's credential account names her by her new id, as Better Auth's sign-up would
    let args = json!({ "providerId": "credential", "accountId": carol["user"] });
    let credential = call(&server, FunctionKind::Action, "signIn:linkedAccount", args);
    assert_eq!(credential["email"], "carol@example.com", "{credential}");
    // … every reference between the auth tables holds the component's new ids
    let component = |model: &str| {
        let found = call(
            &server,
            FunctionKind::Query,
            "migrate:page",
            json!({"table": model, "cursor": null, "numItems": 100}),
        );
        found["page"].as_array().unwrap().clone()
    };
    let members = component("member");
    let owner = members.iter().find(|m| m["role"] == "owner").unwrap();
    assert_eq!(owner["userId"], carol["user"], "{owner}");
    let org = &component("organization")[0];
    assert!(members.iter().all(|m| m["organizationId"] == org["_id"]), "{members:?}");
    assert_eq!(component("invitation")[0]["inviterId"], carol["user"]);
    assert_eq!(component("twoFactor")[0]["userId"], carol["user"]);
    assert_eq!(component("apikey")[0]["referenceId"], dave);
    // … sessions are not carried
    assert!(
        !std::fs::read_dir(prepared.work.data_dir().join("transformed"))
            .unwrap()
            .any(|e| e.unwrap().file_name() == "session.jsonl")
    );
    // … and the app's row leads to the right user
    let todo = page(&server, "todos").into_iter().find(|t| t["title"] == "ship it").unwrap();
    assert_eq!(todo["userId"], dave, "{todo}");
}

#[test]
fn the_supabase_preset_without_the_auth_schema_says_to_export_it() {
    // GIVEN an export of `public` only
    let db = TestDb::with("create table public.notes (id int primary key, body text);");
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    let prepared = Prepared { work, _db: db };

    // WHEN the Supabase preset is asked for
    let run = prepared.migrate(&["init", "--preset", "supabase-to-better-auth"]);

    // THEN init fails naming the missing table and how to export it, writing no preset file
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("needs table `auth.users`"), "{run}");
    assert!(run.stderr.contains("--schemas public,auth"), "{run}");
    assert!(!prepared.plan_dir().join("0002_supabase_to_better_auth.toml").exists());
}
