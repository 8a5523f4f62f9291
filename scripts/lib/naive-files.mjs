// The baseline of scripts/bench-files.sh, and its setup.
//
//   node naive-files.mjs put <s3-url> <bucket> <count> <bytes>
//     creates <bucket> on the S3 server and puts <count> objects f/<i>.bin of <bytes> bytes each.
//   node naive-files.mjs get <s3-url> <bucket> <count> <in-flight>
//     only the downloads, <in-flight> at a time: what the S3 server alone serves.
//   node naive-files.mjs copy <s3-url> <bucket> <count> <convex-url> <admin-key>
//     what a one-off script does: one file at a time, download it whole, then upload it the way
//     Convex apps do (migrate:generateUploadUrl, POST the bytes, migrate:recordFiles).
//
// Every S3 request is signed (AWS signature v4, path-style, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION from the environment), as the S3 SDK a one-off script
// would use signs them: a server that checks signatures (s3s-fs) refuses anything else.
import { createHash, createHmac } from "node:crypto";

const [mode, s3, bucket, countText, ...rest] = process.argv.slice(2);
const count = Number(countText);

async function call(convexUrl, key, kind, path, args) {
  const response = await fetch(`${convexUrl}/api/${kind}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Convex ${key}`, "Convex-Client": "naive-1.0.0" },
    body: JSON.stringify({ path, args, format: "convex_encoded_json" }),
  });
  const reply = await response.json();
  if (reply.status !== "success") throw new Error(`${path}: ${JSON.stringify(reply)}`);
  return reply.value;
}

async function sha256(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Buffer.from(digest).toString("base64");
}

const hex = (data) => createHash("sha256").update(data).digest("hex");
const hmac = (key, data) => createHmac("sha256", key).update(data).digest();

// `fetch(url, init)` with AWS signature v4 headers for S3 (the payload left unsigned, as S3
// allows: the bytes are checked by their SHA-256 at the end of the copy).
function s3fetch(method, url, body) {
  const { AWS_ACCESS_KEY_ID: id, AWS_SECRET_ACCESS_KEY: secret } = process.env;
  const region = process.env.AWS_REGION ?? "us-east-1";
  const target = new URL(url);
  const date = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = date.slice(0, 8);
  const headers = { host: target.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": date };
  const signed = Object.keys(headers).sort();
  // Each canonical header line ends with its own newline; the join adds the blank line after.
  const canonicalHeaders = signed.map((name) => `${name}:${headers[name]}\n`).join("");
  const request = [method, target.pathname, "", canonicalHeaders, signed.join(";"), "UNSIGNED-PAYLOAD"].join("\n");
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", date, scope, hex(request)].join("\n");
  let key = hmac(`AWS4${secret}`, day);
  for (const part of [region, "s3", "aws4_request"]) key = hmac(key, part);
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  delete headers.host; // fetch sends it, the same value
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${id}/${scope}, SignedHeaders=${signed.join(";")}, Signature=${signature}`;
  return fetch(url, { method, headers, body });
}

if (mode === "put") {
  const size = Number(rest[0]);
  const created = await s3fetch("PUT", `${s3}/${bucket}`);
  if (!created.ok) throw new Error(`creating ${bucket}: ${created.status}`);
  const body = Buffer.alloc(size);
  for (let i = 0; i < count; i += 1) {
    body.writeUInt32LE(i, 0); // every object different
    const put = await s3fetch("PUT", `${s3}/${bucket}/f/${i}.bin`, body);
    if (!put.ok) throw new Error(`putting f/${i}.bin: ${put.status}`);
  }
} else if (mode === "get") {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const got = await s3fetch("GET", `${s3}/${bucket}/f/${next++}.bin`);
      if (!got.ok) throw new Error(`getting: ${got.status}`);
      await got.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: Number(rest[0]) }, worker));
} else if (mode === "copy") {
  const [convexUrl, key] = rest;
  for (let i = 0; i < count; i += 1) {
    const path = `f/${i}.bin`;
    const got = await s3fetch("GET", `${s3}/${bucket}/${path}`);
    if (!got.ok) throw new Error(`getting ${path}: ${got.status}`);
    const bytes = Buffer.from(await got.arrayBuffer());
    const url = await call(convexUrl, key, "mutation", "migrate:generateUploadUrl", {});
    const contentType = "application/octet-stream";
    const uploaded = await fetch(url, { method: "POST", headers: { "Content-Type": contentType }, body: bytes });
    const { storageId } = await uploaded.json();
    const file = { bucket, path, owner: null, storageId, size: bytes.length, contentType, sha256: await sha256(bytes) };
    await call(convexUrl, key, "mutation", "migrate:recordFiles", { files: [file] });
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
