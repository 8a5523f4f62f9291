// A Convex deployment's HTTP API on this machine, for migrate's tests: loads a Convex app folder
// into the official `convex-test` runtime and answers `/api/query`, `/api/mutation` and
// `/api/action` the way Convex does (/work/shared/convex-wire.md), so the tests call the real
// generated validators and functions over real HTTP.
//
//   tsx server.ts <convex-dir> --admin-key <key> [--port 0] [--page-size 100] [--page-delay-ms 0]
//
// Loads `<convex-dir>/schema.ts` and every other `.ts` module under it (`_generated` aside).
// A folder holding a `convex.config.ts` is a component installed locally (Better Auth's Local
// Install: `convex/betterAuth/`): it is registered under the folder's name with its own
// `schema.ts` and modules (convex-test's `registerComponent`), so that the app's functions
// reach it through `components.<name>`.
// Once listening, prints one line `listening on http://127.0.0.1:<port>` to stdout; logs one
// line per call to stderr. Exits when its stdin, a pipe, closes: a test that dies cannot leave it
// running.
//
// What it answers, as Convex does:
// - 200 `{"status":"success","value":<convex_encoded_json>,"logLines":[]}`;
// - 200 `{"status":"error","errorMessage":…,"logLines":[]}` (plus `errorData` for a ConvexError)
//   when the function throws, its arguments fail validation, the function does not exist, or it
//   is of another kind than the route; a mutation that throws leaves nothing written;
// - 401 `BadAdminKey` for an `Authorization` header that is not `Convex <admin key>`; without the
//   header only public functions are found;
// - 400 `InvalidVersion` for a `Convex-Client` header that is not `<name>-<semver>`, 400
//   `BadJsonBody` for a body that is not `{"path": string, "args": object, …}`; 404 elsewhere.
// - the system query `_system/frontend/getSchemas` (what the dashboard reads): `{active}`, the
//   schema as `SchemaDefinition.export()` writes it, for `migrate export --from-convex`;
// - `POST /api/function` with `componentPath` (`npx convex run --component`): a component's
//   function, admin only; `getSchemas` takes `componentId`, here the component's name;
// - `GET /api/list_snapshot?tableName=&snapshot=&cursor=&format=convex_encoded_json`, Convex's
//   streaming export: `{values, snapshot, cursor, hasMore}`, documents in `_creationTime` order
//   with `_table` and `_ts`, `--page-size` per page (after `--page-delay-ms`), every page of one
//   read at the snapshot its first page returned. The snapshot is the number of mutations run so
//   far; this server keeps only the latest, so a read whose snapshot a mutation has since passed
//   is refused (400 `InvalidSnapshot`) where Convex would still serve it.
// Where it is stricter than Convex, on purpose: `format` must be `convex_encoded_json` (Convex
// would answer in a lossy encoding that migrate must never rely on), and Convex's per-mutation
// limits are enforced (convex-test's `transactionLimits`), so a batch too big for Convex fails
// here too. Calls run one at a time, like Convex's serializable mutations: convex-test is not
// built for concurrent calls.
//
// File storage, as Convex serves it: `ctx.storage.generateUploadUrl()` gives a URL on this
// server (`/api/storage/upload?token=…`, each token good for one upload); a POST there with the
// bytes stores them in convex-test's storage with the request's Content-Type and answers
// `{"storageId": …}`. `ctx.storage.getUrl(id)` gives `/api/storage/<sha256>` here, which a GET
// answers with the bytes and their Content-Type. (convex-test itself keeps no content type and
// names no host: the server fills both in.)
import { fstatSync, readdirSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { makeFunctionReference } from "convex/server";
import type { GenericSchema, SchemaDefinition } from "convex/server";
import { convexToJson, jsonToConvex } from "convex/values";
import type { JSONValue, Value } from "convex/values";
import { convexTest } from "convex-test";

type Kind = "query" | "mutation" | "action";

/** What `convex/server` marks a registered function with. */
type RegisteredFunction = {
  isQuery?: boolean;
  isMutation?: boolean;
  isAction?: boolean;
  isPublic?: boolean;
  isInternal?: boolean;
};

function usage(problem: string): never {
  console.error(`${problem}\nusage: tsx server.ts <convex-dir> --admin-key <key> [--port 0]`);
  process.exit(2);
}

function parseArgs(argv: string[]): {
  convexDir: string;
  adminKey: string;
  port: number;
  pageSize: number;
  pageDelayMs: number;
} {
  let convexDir: string | undefined;
  let adminKey: string | undefined;
  let port = 0;
  let pageSize = 100;
  let pageDelayMs = 0;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--page-size" || arg === "--page-delay-ms") {
      const value = Number(argv[i + 1]);
      if (!Number.isInteger(value) || value < 0) {
        usage(`${arg} needs a whole number`);
      }
      i += 1;
      if (arg === "--page-size") {
        pageSize = Math.max(1, value);
      } else {
        pageDelayMs = value;
      }
    } else if (arg === "--admin-key" || arg === "--port") {
      const value = argv[i + 1];
      if (value === undefined) {
        usage(`${arg} needs a value`);
      }
      i += 1;
      if (arg === "--admin-key") {
        adminKey = value;
      } else {
        port = Number(value);
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          usage(`--port ${value} is not a port number`);
        }
      }
    } else if (arg.startsWith("--") || convexDir !== undefined) {
      usage(`unexpected argument ${arg}`);
    } else {
      convexDir = arg;
    }
  }
  if (convexDir === undefined) {
    usage("no convex dir given");
  }
  if (adminKey === undefined || adminKey === "") {
    usage("no --admin-key given");
  }
  return { convexDir: resolve(convexDir), adminKey, port, pageSize, pageDelayMs };
}

/** The folders directly under `dir` that are components (they hold a `convex.config.ts`). */
function componentDirs(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .filter((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() && readdirSync(path).includes("convex.config.ts");
    });
}

/**
 * Every `.ts` module under `dir` but `_generated/`, declaration files and components' folders,
 * relative paths.
 */
function moduleFiles(dir: string, root = dir): string[] {
  const files: string[] = [];
  const components = dir === root ? componentDirs(dir) : [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== "_generated" && name !== "node_modules" && !components.includes(name)) {
        files.push(...moduleFiles(path, root));
      }
    } else if (name.endsWith(".ts") && !name.endsWith(".d.ts") && name !== "convex.config.ts") {
      // (`convex.config.ts` configures the deployment, it is no module of functions; its
      // `app.use` works only in Convex's bundler.)
      files.push(relative(root, path).split(sep).join("/"));
    }
  }
  return files;
}

const { convexDir, adminKey, port, pageSize, pageDelayMs } = parseArgs(process.argv.slice(2));
const files = moduleFiles(convexDir);
if (!files.includes("schema.ts")) {
  usage(`${convexDir} has no schema.ts`);
}

// Every module is imported now, so that one that does not load stops the server at start (as a
// deploy would fail) instead of failing some call later. Node caches modules: convex-test gets
// the very objects whose flags `findFunction` reads.
const modules = new Map<string, Record<string, unknown>>();
for (const file of files) {
  const url = pathToFileURL(join(convexDir, file)).href;
  modules.set(file.replace(/\.ts$/, ""), (await import(url)) as Record<string, unknown>);
}
const schema = modules.get("schema")?.default as
  | SchemaDefinition<GenericSchema, boolean>
  | undefined;
if (schema === undefined) {
  usage(`${convexDir}/schema.ts has no default export`);
}

// convex-test finds the functions' root folder through a key containing `_generated`; that
// module is never loaded, so it needs no content.
const moduleMap: Record<string, () => Promise<unknown>> = {
  "./convex/_generated/server.ts": async () => ({}),
};
for (const path of modules.keys()) {
  // Looked up at each call, so that a redeploy (below) takes effect.
  moduleMap[`./convex/${path}.ts`] = async () => modules.get(path);
}
const t = convexTest({ schema, modules: moduleMap, transactionLimits: true });

/** Each component's schema and modules (by path without `.ts`), for `/api/function`. */
const components = new Map<
  string,
  { schema: SchemaDefinition<GenericSchema, boolean>; modules: Map<string, Record<string, unknown>> }
>();

for (const name of componentDirs(convexDir)) {
  const dir = join(convexDir, name);
  const loaded = new Map<string, Record<string, unknown>>();
  const componentFiles = moduleFiles(dir);
  if (!componentFiles.includes("schema.ts")) {
    usage(`the component ${dir} has no schema.ts`);
  }
  const componentModules: Record<string, () => Promise<unknown>> = {
    [`./${name}/_generated/api.ts`]: async () => ({}),
  };
  let componentSchema: SchemaDefinition<GenericSchema, boolean> | undefined;
  for (const file of componentFiles) {
    const module = (await import(pathToFileURL(join(dir, file)).href)) as Record<string, unknown>;
    componentModules[`./${name}/${file}`] = async () => module;
    loaded.set(file.replace(/\.ts$/, ""), module);
    if (file === "schema.ts") {
      componentSchema = module.default as SchemaDefinition<GenericSchema, boolean>;
    }
  }
  if (componentSchema === undefined) {
    usage(`${dir}/schema.ts has no default export`);
  }
  t.registerComponent(name, componentSchema, componentModules);
  components.set(name, { schema: componentSchema, modules: loaded });
}

/** The registered function at `path` (`dir/file:name`, `file.js:name`, `file` for default). */
function findFunction(path: string): RegisteredFunction | undefined {
  const [file, name = "default"] = path.split(":", 2);
  const module = modules.get(file.replace(/\.js$/, ""));
  if (module === undefined || !Object.hasOwn(module, name)) {
    return undefined;
  }
  const exported = module[name] as RegisteredFunction | null | undefined;
  const registered =
    (typeof exported === "object" || typeof exported === "function") &&
    exported !== null &&
    (exported.isQuery === true || exported.isMutation === true || exported.isAction === true);
  return registered ? exported : undefined;
}

function kindOf(fn: RegisteredFunction): Kind {
  return fn.isQuery ? "query" : fn.isMutation ? "mutation" : "action";
}

const title = (kind: Kind) => kind[0].toUpperCase() + kind.slice(1);

/** A system error, as Convex sends them: not 200, `{code, message}`. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Reply = { status: number; body: unknown };

/** `Convex-Client: <name>-<semver>`, e.g. `npm-1.2.3` or `migrate-0.1.0-beta.1`. */
const CLIENT_VERSION = /^[^\s]+?-\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/** Checks the headers and body of a call; returns what to run, or throws an HttpError. */
function parseCall(
  request: IncomingMessage,
  text: string,
): { admin: boolean; path: string; args: Record<string, Value> } {
  const client = request.headers["convex-client"];
  if (client !== undefined && !CLIENT_VERSION.test(String(client))) {
    throw new HttpError(
      400,
      "InvalidVersion",
      `Convex-Client ${JSON.stringify(client)} is not <name>-<semver>, e.g. npm-1.2.3`,
    );
  }
  const authorization = request.headers.authorization;
  if (authorization !== undefined && authorization !== `Convex ${adminKey}`) {
    throw new HttpError(401, "BadAdminKey", "The provided admin key was invalid for this instance");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    const problem = `Failed to parse the request body as JSON: ${message(e)}`;
    throw new HttpError(400, "BadJsonBody", problem);
  }
  const call = body as { path?: unknown; args?: unknown; format?: unknown } | null;
  const isObject = (value: unknown) =>
    typeof value === "object" && value !== null && !Array.isArray(value);
  if (!isObject(call) || typeof call?.path !== "string" || !isObject(call.args)) {
    throw new HttpError(
      400,
      "BadJsonBody",
      'The request body must be {"path": string, "args": object, "format": "convex_encoded_json"}',
    );
  }
  if (call.format !== "convex_encoded_json") {
    throw new HttpError(
      400,
      "BadJsonBody",
      `format ${JSON.stringify(call.format)}: this test server answers only ` +
        '"convex_encoded_json" (Convex would reply in a lossy encoding)',
    );
  }
  let args: Record<string, Value>;
  try {
    args = jsonToConvex(call.args as JSONValue) as Record<string, Value>;
  } catch (e) {
    const problem = `The arguments are not convex_encoded_json: ${message(e)}`;
    throw new HttpError(400, "BadJsonBody", problem);
  }
  return { admin: authorization !== undefined, path: call.path, args };
}

const DEPLOY_HINT = "Did you forget to run `npx convex dev` or `npx convex deploy`?";

/** Runs one call under convex-test: the reply Convex gives for the function's outcome. */
async function run(
  kind: Kind,
  admin: boolean,
  path: string,
  args: Record<string, Value>,
): Promise<Reply> {
  const failed = (errorMessage: string, errorData?: JSONValue): Reply => ({
    status: 200,
    body: {
      status: "error",
      errorMessage,
      ...(errorData === undefined ? {} : { errorData }),
      logLines: [],
    },
  });
  if (path === "_system/frontend/getSchemas" && admin && kind === "query") {
    const id = args.componentId;
    const of = typeof id === "string" ? components.get(id)?.schema : schema;
    if (of === undefined) {
      return failed(`no component ${JSON.stringify(id)}`);
    }
    const active = (of as unknown as { export(): string }).export();
    return { status: 200, body: { status: "success", value: { active }, logLines: [] } };
  }
  const fn = findFunction(path);
  if (!admin && (fn === undefined || !fn.isPublic)) {
    return failed(`Could not find public function for '${path}'. ${DEPLOY_HINT}`);
  }
  if (fn === undefined) {
    return failed(`Could not find function for '${path}'. ${DEPLOY_HINT}`);
  }
  if (kindOf(fn) !== kind) {
    const defined = title(kindOf(fn));
    return failed(`Trying to execute ${path} as ${title(kind)}, but it is defined as ${defined}.`);
  }
  try {
    const value: Value | undefined =
      kind === "query"
        ? await t.query(makeFunctionReference<"query">(path), args)
        : kind === "mutation"
          ? await t.mutation(makeFunctionReference<"mutation">(path), args)
          : await t.action(makeFunctionReference<"action">(path), args);
    // A function that returns nothing returns null over the wire.
    const encoded = convexToJson(ownUrls(value ?? null));
    return { status: 200, body: { status: "success", value: encoded, logLines: [] } };
  } catch (e) {
    // A ConvexError carries data the client may read (`Symbol.for("ConvexError")` marks one
    // whatever copy of the `convex` package made it).
    const data =
      typeof e === "object" && e !== null && Symbol.for("ConvexError") in e
        ? convexToJson(((e as { data?: Value }).data ?? null) as Value)
        : undefined;
    return failed(message(e), data);
  }
}

/** convex-test's stand-in host in the URLs its storage syscalls return. */
const CONVEX_TEST_HOST = "https://some-deployment.convex.cloud";

/** This server's own URL, once it listens. */
let origin = "";

/** Upload tokens handed out by `generateUploadUrl` and not used yet. */
const uploadTokens = new Set<string>();

/** Content types of stored files, by storage id (convex-test's `_storage` has none). */
const contentTypes = new Map<string, string>();

/** A value a function returned, with convex-test's storage URLs made this server's. */
function ownUrls(value: Value): Value {
  if (typeof value !== "string" || !value.startsWith(`${CONVEX_TEST_HOST}/api/storage/`)) {
    return value;
  }
  const url = new URL(value.replace(CONVEX_TEST_HOST, origin));
  const token = url.searchParams.get("token");
  if (url.pathname === "/api/storage/upload" && token !== null) {
    uploadTokens.add(token);
  }
  return url.toString();
}

/** `POST /api/storage/upload?token=…`: stores the body, answers `{"storageId": …}`. */
async function upload(request: IncomingMessage, body: Buffer): Promise<Reply> {
  const token = new URL(request.url ?? "", origin).searchParams.get("token");
  if (token === null || !uploadTokens.delete(token)) {
    return { status: 400, body: { code: "InvalidUploadToken", message: "unknown upload token" } };
  }
  const type = String(request.headers["content-type"] ?? "application/octet-stream");
  const storageId = await t.run(async (ctx) => await ctx.storage.store(new Blob([new Uint8Array(body)], { type })));
  contentTypes.set(storageId, type);
  return { status: 200, body: { storageId } };
}

/** `GET /api/storage/<sha256>`: the bytes `getUrl` names, with their content type. */
async function download(route: string, response: ServerResponse): Promise<boolean> {
  const sha256 = decodeURIComponent(route.slice("/api/storage/".length));
  const found = await t.run(async (ctx) => {
    for (const doc of await ctx.db.system.query("_storage").collect()) {
      if (doc.sha256 === sha256) {
        const blob = await ctx.storage.get(doc._id);
        // An ArrayBuffer: what `t.run` returns must be a Convex value.
        return blob === null ? null : { id: doc._id, bytes: await blob.arrayBuffer() };
      }
    }
    return null;
  });
  if (found === null) {
    return false;
  }
  const bytes = Buffer.from(found.bytes);
  response.writeHead(200, {
    "Content-Type": contentTypes.get(found.id) ?? "application/octet-stream",
    "Content-Length": bytes.length,
  });
  response.end(bytes);
  return true;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolveBody(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

function send(response: ServerResponse, reply: Reply) {
  const text = JSON.stringify(reply.body);
  response.writeHead(reply.status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
  });
  response.end(text);
}

/**
 * `POST /api/function` with `componentPath`: what `npx convex run --component` sends
 * (convex-js `ConvexHttpClient.function`): a function of a component, admin only, of whatever
 * kind it is.
 */
async function runInComponent(
  admin: boolean,
  componentPath: string,
  path: string,
  args: Record<string, Value>,
): Promise<Reply> {
  const failed = (errorMessage: string): Reply => ({
    status: 200,
    body: { status: "error", errorMessage, logLines: [] },
  });
  const component = components.get(componentPath);
  if (!admin || component === undefined) {
    return failed(`Could not find function for '${path}' in component '${componentPath}'.`);
  }
  const [file, name = "default"] = path.split(":", 2);
  const fn = component.modules.get(file.replace(/\.js$/, ""))?.[name] as
    | RegisteredFunction
    | undefined;
  if (fn === undefined || !(fn.isQuery || fn.isMutation || fn.isAction)) {
    return failed(`Could not find function for '${path}' in component '${componentPath}'.`);
  }
  // convex-test reads a function handle as a component's function.
  const handle = `function://${componentPath};${path}`;
  const run = t as unknown as Record<
    "query" | "mutation" | "action",
    (fn: string, args: Record<string, Value>) => Promise<Value | undefined>
  >;
  try {
    const value = fn.isQuery
      ? await run.query(handle, args)
      : fn.isMutation
        ? await run.mutation(handle, args)
        : await run.action(handle, args);
    return {
      status: 200,
      body: { status: "success", value: convexToJson(value ?? null), logLines: [] },
    };
  } catch (e) {
    return failed(message(e));
  }
}

const ROUTES = new Map<string, Kind>([
  ["/api/query", "query"],
  ["/api/mutation", "mutation"],
  ["/api/action", "action"],
]);

// Calls run one after another: each waits for the one before it to finish.
let queue: Promise<unknown> = Promise.resolve();
/** Mutations and actions that succeeded: the snapshot `list_snapshot` reads at. */
let writes = 0;

/** `GET /api/list_snapshot`: one page of a table at the latest snapshot. */
async function listSnapshot(request: IncomingMessage): Promise<Reply> {
  const refuse = (status: number, code: string, message: string): Reply => ({
    status,
    body: { code, message },
  });
  if (request.headers.authorization !== `Convex ${adminKey}`) {
    return refuse(401, "BadAdminKey", "The provided admin key was invalid for this instance");
  }
  const query = new URL(request.url ?? "", "http://localhost").searchParams;
  if (query.get("format") !== "convex_encoded_json") {
    return refuse(400, "InvalidFormat", "this test server answers only convex_encoded_json");
  }
  const table = query.get("tableName");
  if (table === null || !(table in (schema as SchemaDefinition<GenericSchema, boolean>).tables)) {
    return refuse(400, "TableNotFound", `no table ${JSON.stringify(table)}`);
  }
  const snapshot = query.has("snapshot") ? Number(query.get("snapshot")) : writes;
  if (snapshot !== writes) {
    return refuse(
      400,
      "InvalidSnapshot",
      `snapshot ${snapshot} is gone: this test server keeps only the latest (${writes})`,
    );
  }
  const offset = query.has("cursor") ? Number(query.get("cursor")) : 0;
  if (pageDelayMs > 0) {
    await new Promise((done) => setTimeout(done, pageDelayMs));
  }
  const documents = (await t.run(async (ctx) =>
    ctx.db.query(table as never).collect(),
  )) as Record<string, Value>[];
  const page = documents.slice(offset, offset + pageSize).map((document) => ({
    ...(convexToJson(document as Value) as Record<string, JSONValue>),
    _table: table,
    _ts: snapshot,
  }));
  const next = offset + page.length;
  return {
    status: 200,
    body: { values: page, snapshot, cursor: String(next), hasMore: next < documents.length },
  };
}

async function handle(request: IncomingMessage, response: ServerResponse) {
  const route = request.url?.split("?")[0] ?? "";
  const bytes = await readBody(request);
  if (request.method === "POST" && route === "/api/storage/upload") {
    const reply = queue.then(() => upload(request, bytes));
    queue = reply.catch(() => undefined);
    const done = await reply;
    console.error(`${route} → ${done.status} (${bytes.length} bytes)`);
    send(response, done);
    return;
  }
  if (request.method === "GET" && route.startsWith("/api/storage/")) {
    const served = queue.then(() => download(route, response));
    queue = served.catch(() => undefined);
    if (await served) {
      return;
    }
  }
  const text = bytes.toString("utf8");
  if (request.method === "GET" && route === "/api/list_snapshot") {
    const reply = queue.then(() => listSnapshot(request));
    queue = reply.catch(() => undefined);
    const done = await reply;
    console.error(`${route} ${request.url} → ${done.status}`);
    send(response, done);
    return;
  }
  if (request.method === "POST" && route === "/api/function") {
    let call;
    let componentPath = "";
    try {
      call = parseCall(request, text);
      componentPath = String((JSON.parse(text) as { componentPath?: unknown }).componentPath ?? "");
    } catch (e) {
      if (e instanceof HttpError) {
        send(response, { status: e.status, body: { code: e.code, message: e.message } });
        return;
      }
      throw e;
    }
    const { admin, path, args } = call;
    const reply = queue.then(async () => {
      const done = await runInComponent(admin, componentPath, path, args);
      writes += 1;
      return done;
    });
    queue = reply.catch(() => undefined);
    const done = await reply;
    console.error(`${route} ${componentPath}/${path} → ${JSON.stringify(done.body).slice(0, 200)}`);
    send(response, done);
    return;
  }
  const kind = ROUTES.get(route);
  if (request.method !== "POST" || kind === undefined) {
    send(response, {
      status: 404,
      body: { code: "NotFound", message: `No route for ${request.method} ${route}` },
    });
    return;
  }
  let call;
  try {
    call = parseCall(request, text);
  } catch (e) {
    if (e instanceof HttpError) {
      console.error(`${route} → ${e.status} ${e.code}: ${e.message}`);
      send(response, { status: e.status, body: { code: e.code, message: e.message } });
      return;
    }
    throw e;
  }
  const { admin, path, args } = call;
  const started = performance.now();
  const reply = queue.then(async () => {
    const done = await run(kind, admin, path, args);
    if (kind !== "query" && (done.body as { status: string }).status === "success") {
      writes += 1;
    }
    return done;
  });
  queue = reply.catch(() => undefined);
  const done = await reply;
  const body = done.body as { status: string; errorMessage?: string };
  const outcome =
    body.status === "success" ? "success" : `error: ${body.errorMessage?.split("\n")[0]}`;
  const ms = (performance.now() - started).toFixed(1);
  console.error(`${route} ${path}${admin ? " (admin)" : ""} → ${outcome} (${ms} ms)`);
  send(response, done);
}

const server = createServer((request, response) => {
  handle(request, response).catch((e: unknown) => {
    console.error(`internal error: ${e instanceof Error ? e.stack : String(e)}`);
    send(response, { status: 500, body: { code: "InternalServerError", message: message(e) } });
  });
});
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  const bound = typeof address === "object" && address !== null ? address.port : port;
  origin = `http://127.0.0.1:${bound}`;
  console.log(`listening on http://127.0.0.1:${bound}`);
});

// A test starts the server with its stdin a pipe it holds: when the pipe closes (the test ended
// or died), the server goes too. Started by hand, stdin is a terminal or /dev/null, and ignored.
//
// A line `redeploy` on stdin loads the app's modules again (all but `schema.ts`, which stays as
// it was: a redeploy that would change the schema needs a new server), keeping the data, as a
// `npx convex deploy` of new functions does; the server answers `redeployed` on stdout.
let deploys = 0;
async function redeploy() {
  deploys += 1;
  for (const file of moduleFiles(convexDir)) {
    const path = file.replace(/\.ts$/, "");
    if (path !== "schema") {
      const url = `${pathToFileURL(join(convexDir, file)).href}?deploy=${deploys}`;
      modules.set(path, (await import(url)) as Record<string, unknown>);
    }
  }
  console.log("redeployed");
}

if (fstatSync(0).isFIFO()) {
  let pending = "";
  process.stdin.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, end).trim();
      pending = pending.slice(end + 1);
      if (line === "redeploy") {
        queue = queue.then(redeploy).catch((e: unknown) => console.error(`redeploy: ${message(e)}`));
      }
    }
  });
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}
