// What an auditor's or a member system's verifier in JavaScript does with what Relais signs
// and chains (README, "Signatures and hashes"): rebuild the RFC 8785 bytes, check the Ed25519
// signature or the SHA-256. Node's own crypto, no package, nothing shared with the Python code.
// Usage: node tests/tools/verify_signatures.mjs <cases.json>
//   cases: [{"document": …, "signature": "rfc8785:<base64>", "public_key": "<base64>"}
//           | {"document": …, "sha256": "<hex>"}]
// Prints [true|false, …], one verdict per case.
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";

// RFC 8785 in ECMAScript is JSON.stringify with the keys of every object sorted by their
// UTF-16 code units, which is what Array.prototype.sort compares by default.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function ed25519(publicKey) {
  const x = Buffer.from(publicKey, "base64").toString("base64url");
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
}

function holds(item) {
  const bytes = Buffer.from(canonical(item.document), "utf8");
  if (item.sha256 !== undefined) {
    return createHash("sha256").update(bytes).digest("hex") === item.sha256;
  }
  const [form, raw] = item.signature.split(":");
  if (form !== "rfc8785") return false;
  return verify(null, bytes, ed25519(item.public_key), Buffer.from(raw, "base64"));
}

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
process.stdout.write(JSON.stringify(cases.map(holds)));
