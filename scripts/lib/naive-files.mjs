// The baseline of scripts/bench-files.sh, and its setup.
//
//   node naive-files.mjs put <s3-url> <bucket> <count> <bytes>
//     creates <bucket> on the S3 server (moto takes unsigned requests) and puts <count> objects
//     f/<i>.bin of <bytes> bytes each.
//   node naive-files.mjs get <s3-url> <bucket> <count> <in-flight>
//     only the downloads, <in-flight> at a time: what the S3 server alone serves.
//   node naive-files.mjs copy <s3-url> <bucket> <count> <convex-url> <admin-key>
//     what a one-off script does: one file at a time, download it whole, then upload it the way
//     Convex apps do (migrate:generateUploadUrl, POST the bytes, migrate:recordFiles).
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

if (mode === "put") {
  const size = Number(rest[0]);
  const created = await fetch(`${s3}/${bucket}`, { method: "PUT" });
  if (!created.ok) throw new Error(`creating ${bucket}: ${created.status}`);
  const body = Buffer.alloc(size);
  for (let i = 0; i < count; i += 1) {
    body.writeUInt32LE(i, 0); // every object different
    // Readable without a signature, so that the baseline needs no S3 client of its own.
    const put = await fetch(`${s3}/${bucket}/f/${i}.bin`, { method: "PUT", body, headers: { "x-amz-acl": "public-read" } });
    if (!put.ok) throw new Error(`putting f/${i}.bin: ${put.status}`);
  }
} else if (mode === "get") {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const got = await fetch(`${s3}/${bucket}/f/${next++}.bin`);
      if (!got.ok) throw new Error(`getting: ${got.status}`);
      await got.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: Number(rest[0]) }, worker));
} else if (mode === "copy") {
  const [convexUrl, key] = rest;
  for (let i = 0; i < count; i += 1) {
    const path = `f/${i}.bin`;
    const got = await fetch(`${s3}/${bucket}/${path}`);
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
