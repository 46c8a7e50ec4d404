/* glasslog receipt verification in the browser, with the browser's own WebCrypto (Ed25519, SHA-256).
 *
 * Mirrors the Python reference exactly (same checks, same order, same messages):
 *   glasslog/ledger/receipt.py   Receipt.from_dict             -> parseReceipt
 *   glasslog/ledger/note.py      Verifier.parse, open_note,
 *                                parse_checkpoint, open_checkpoint -> parseVerifierKey, openNote, parseCheckpoint, openCheckpoint
 *   glasslog/ledger/merkle.py    root_from_inclusion_proof,
 *                                verify_inclusion              -> rootFromInclusionProof, verifyInclusion
 *   glasslog/ledger/entries.py   Entry.from_bytes (type, version, RFC 8785 form; decision/outcome schema from
 *                                glasslog/records/decisions.py)  -> checkEntry
 *   glasslog/verify/receipts.py  verify_receipt                -> verifyReceipt
 *   glasslog/ledger/cosignature.py  CosignatureVerifier.parse, split_note,
 *                                verify_cosigned (k-of-n witness policy) -> parseCosignatureKey, splitNote, verifyCosigned
 *
 * Sources: C2SP signed-note (https://c2sp.org/signed-note): signature lines "— <name> <base64(keyhash||sig)>",
 * key hash = SHA-256(name || 0x0A || 0x01 || public key)[:4], verifier key "name+hexhash+base64(0x01||key)";
 * C2SP tlog-cosignature cosignature/v1 (key hash with type byte 0x04; signature = key hash || u64 big-endian timestamp ||
 * Ed25519 signature of "cosignature/v1\ntime <t>\n" + checkpoint body);
 * C2SP tlog-checkpoint (origin, tree size, base64 root); RFC 9162 2.1.1 (leaf hash SHA-256(0x00||entry), node hash
 * SHA-256(0x01||left||right)) and 2.1.3.2 (inclusion proof verification); RFC 8785 (JSON canonicalization).
 *
 * Nothing here talks to the server: a receipt is checked with the verifier key alone.
 * Where the browser cannot run the check (no WebCrypto outside a secure context, or no Ed25519), verifyReceipt says so
 * (report.unavailable) instead of failing a check: that says nothing about the receipt.
 * Exposed as window.GlasslogVerify.
 */
(function () {
  "use strict";

  const RECEIPT_FORMAT = "glasslog-receipt/v1";
  const ALG_ED25519 = 0x01;
  const ALG_COSIGNATURE_V1 = 0x04;
  const MAX_FUTURE_SECONDS = 600;
  const SIG_PREFIX = "\u2014 ";
  const MAX_SIGNATURES = 100;
  const MAX_ENTRY_BYTES = 65535;
  const HASH_SIZE = 32;
  // glasslog.records.ENTRY_TYPES (a type without a schema here is checked for its envelope and canonical form only)
  const ENTRY_TYPES = ["model", "deployment", "decision", "outcome", "access", "key", "flag", "rating", "finding", "triage", "metric",
                       "witness", "generation", "watermark", "erasure"];
  const COMMITMENT_FIELDS = { input: "input", subject: "subject", output: "output_commitment", outcome: "outcome_commitment",
                              "flag-text": "text" };
  const DIGEST = /^sha256:[0-9a-f]{64}$/;
  const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

  class VerifyError extends Error {}
  /* The check could not run in this browser (not a failed check: it says nothing about the receipt). */
  class UnavailableError extends Error {}

  /* Why this browser cannot check receipts on this page, or null if it can (as far as can be told before trying Ed25519). */
  function unavailable() {
    if (!window.isSecureContext) {
      return "this page is not a secure context (it was opened over plain HTTP at an address other than localhost), " +
        "so the browser withholds the cryptography (WebCrypto) that the check needs";
    }
    if (!globalThis.crypto || !globalThis.crypto.subtle) return "this browser offers no WebCrypto";
    return null;
  }

  const utf8 = new TextEncoder();
  const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

  function repr(s) { return "'" + String(s) + "'"; }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function hex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""); }

  function b64encode(bytes) {
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin);
  }

  /* Standard base64 with the alphabet and padding checked (Python's base64.b64decode(validate=True)). */
  function b64decode(text) {
    if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
    try {
      const bin = atob(text);
      return Uint8Array.from(bin, (c) => c.charCodeAt(0));
    } catch (e) {
      return null;
    }
  }

  /* note.py _b64decode: valid and canonical standard base64. */
  function b64decodeCanonical(text, what) {
    const raw = b64decode(text);
    if (raw === null) throw new VerifyError(`${what} is not valid standard base64`);
    if (b64encode(raw) !== text) throw new VerifyError(`${what} is not in canonical base64 form`);
    return raw;
  }

  function subtle() {
    const why = unavailable();
    if (why !== null) throw new UnavailableError(why);
    return globalThis.crypto.subtle;
  }

  async function sha256(bytes) { return new Uint8Array(await subtle().digest("SHA-256", bytes)); }

  /* RFC 9162 2.1.1 */
  async function leafHash(entry) { return sha256(concat(new Uint8Array([0]), entry)); }
  async function nodeHash(left, right) { return sha256(concat(new Uint8Array([1]), left, right)); }

  // ------------------------------------------------------------ signed notes (note.py)
  function checkName(name) {
    if (!name || /[\s+]/u.test(name) || /[\p{C}\p{Z}]/u.test(name)) {
      throw new VerifyError(`key name ${repr(name)} must be non-empty printable text without spaces or '+'`);
    }
  }

  async function keyHash(name, publicKey) {
    return (await sha256(concat(utf8.encode(name), new Uint8Array([0x0a, ALG_ED25519]), publicKey))).slice(0, 4);
  }

  /* Verifier.parse: "name+hexhash+base64(0x01 || 32-byte key)". */
  async function parseVerifierKey(vkey) {
    if (typeof vkey !== "string") throw new VerifyError("verifier key must be a string");
    const s = vkey.trim();
    const a = s.indexOf("+");
    const b = a < 0 ? -1 : s.indexOf("+", a + 1);
    if (a < 0 || b < 0) throw new VerifyError("verifier key must have the form name+keyhash+base64key");
    const name = s.slice(0, a), hexhash = s.slice(a + 1, b), b64 = s.slice(b + 1);
    checkName(name);
    if (!/^[0-9a-f]{8}$/.test(hexhash)) throw new VerifyError("verifier key hash must be 8 lowercase hex digits");
    const raw = b64decodeCanonical(b64, "verifier key");
    if (raw.length !== 33 || raw[0] !== ALG_ED25519) {
      throw new VerifyError("verifier key must be an Ed25519 key (algorithm byte 0x01 and 32 key bytes)");
    }
    const publicKey = raw.slice(1);
    if (hex(await keyHash(name, publicKey)) !== hexhash) throw new VerifyError("verifier key hash does not match its name and key");
    return { name, keyId: hexToBytes(hexhash), publicKey, toString: () => s };
  }

  function hexToBytes(h) {
    const out = new Uint8Array(h.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
    return out;
  }

  async function ed25519Verify(publicKey, message, signature) {
    let key;
    try {
      key = await subtle().importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      if (e && e.name === "NotSupportedError") {
        throw new UnavailableError("this browser's WebCrypto does not support Ed25519 (Chrome and Edge 137+, Firefox 129+ and Safari 17+ do)");
      }
      return false; // a key the browser refuses cannot have made a valid signature
    }
    try {
      return await subtle().verify({ name: "Ed25519" }, key, signature, message);
    } catch (e) {
      return false;
    }
  }

  function checkText(text) {
    if (!text.endsWith("\n")) throw new VerifyError("note text must end with a newline");
    for (const ch of text) {
      const c = ch.codePointAt(0);
      if (ch !== "\n" && (c < 0x20 || c === 0x7f)) {
        throw new VerifyError("note text must not contain control characters other than newline");
      }
    }
  }

  /* open_note: the note's text if it carries a valid signature by this verifier. */
  async function openNote(note, verifier) {
    if (typeof note !== "string") throw new VerifyError("signed note must be text");
    if (note.includes("\r")) throw new VerifyError("signed note has CR characters (CRLF line ends?): C2SP signed notes end lines with LF only");
    if (!note.endsWith("\n")) throw new VerifyError("signed note must end with a newline");
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new VerifyError("signed note has no blank line before its signatures");
    const text = note.slice(0, split + 1), sigBlock = note.slice(split + 2);
    checkText(text);
    const lines = sigBlock.slice(0, -1).split("\n");
    if (lines.length === 0 || lines.length > MAX_SIGNATURES) throw new VerifyError("signed note must have between 1 and 100 signature lines");
    let found = false;
    for (const line of lines) {
      if (!line.startsWith(SIG_PREFIX)) {
        throw new VerifyError(`signature line must start with an em dash and a space: ${repr(line.slice(0, 40))}`);
      }
      const rest = line.slice(SIG_PREFIX.length);
      const sp = rest.indexOf(" ");
      const name = sp < 0 ? rest : rest.slice(0, sp), b64 = sp < 0 ? "" : rest.slice(sp + 1);
      if (sp < 0 || !name || !b64 || b64.includes(" ")) throw new VerifyError("signature line must be '— <key name> <base64 signature>'");
      let raw;
      try {
        raw = decodeSignature(b64);
      } catch (e) {
        if (!(e instanceof VerifyError)) throw e;
        if (name === verifier.name) throw new VerifyError(`signature line by ${name}: ${e.message}`);
        continue;  // C2SP signed-note: signatures of unknown keys are ignored, malformed or not
      }
      if (name !== verifier.name || !equalBytes(raw.slice(0, 4), verifier.keyId)) continue;
      if (raw.length !== 4 + 64 || !(await ed25519Verify(verifier.publicKey, utf8.encode(text), raw.slice(4)))) {
        throw new VerifyError(`signature by ${verifier.name} does not verify: the note was altered or signed by another key`);
      }
      found = true;
    }
    if (!found) throw new VerifyError(`signed note carries no signature by the key ${verifier.name}+${hex(verifier.keyId)}`);
    return text;
  }

  /* parse_checkpoint: origin, tree size (BigInt), 32-byte root, extension lines. */
  function parseCheckpoint(text) {
    if (!text.endsWith("\n")) throw new VerifyError("checkpoint must end with a newline");
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3) throw new VerifyError("checkpoint needs an origin line, a tree size line and a root hash line");
    const [origin, sizeText, rootText, ...extensions] = lines;
    if (!origin || origin !== origin.trim()) throw new VerifyError("checkpoint origin line must be non-empty and have no surrounding spaces");
    if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText)) {
      throw new VerifyError(`checkpoint tree size ${repr(sizeText)} must be an ASCII decimal number without sign or leading zeros`);
    }
    const treeSize = BigInt(sizeText);
    if (treeSize >= 1n << 63n) throw new VerifyError("checkpoint tree size is too large");
    const root = b64decodeCanonical(rootText, "checkpoint root hash");
    if (root.length !== HASH_SIZE) throw new VerifyError(`checkpoint root hash must be ${HASH_SIZE} bytes, got ${root.length}`);
    if (extensions.some((e) => !e)) throw new VerifyError("checkpoint extension lines must not be empty");
    return { origin, treeSize, rootHash: root, extensions };
  }

  async function openCheckpoint(note, verifier, origin) {
    const cp = parseCheckpoint(await openNote(note, verifier));
    const expected = origin !== undefined && origin !== null ? origin : verifier.name;
    if (cp.origin !== expected) throw new VerifyError(`checkpoint origin ${repr(cp.origin)} is not the log's origin ${repr(expected)}`);
    return cp;
  }

  // ------------------------------------------------------------ witness cosignatures (cosignature.py)
  async function cosignatureKeyHash(name, typeByte, publicKey) {
    return (await sha256(concat(utf8.encode(name), new Uint8Array([0x0a, typeByte]), publicKey))).slice(0, 4);
  }

  /* CosignatureVerifier.parse: "name+hexhash+base64(0x04 || key)" (a 0x01 vkey of the same key is read as its 0x04 key). */
  async function parseCosignatureKey(vkey) {
    if (typeof vkey !== "string") throw new VerifyError("witness verifier key must be a string");
    const s = vkey.trim();
    const a = s.indexOf("+");
    const b = a < 0 ? -1 : s.indexOf("+", a + 1);
    if (a < 0 || b < 0) throw new VerifyError("witness verifier key must have the form name+keyhash+base64key");
    const name = s.slice(0, a), hexhash = s.slice(a + 1, b), b64 = s.slice(b + 1);
    checkName(name);
    if (!/^[0-9a-f]{8}$/.test(hexhash)) throw new VerifyError("witness verifier key hash must be 8 lowercase hex digits");
    const raw = b64decodeCanonical(b64, "witness verifier key");
    if (raw.length !== 33 || (raw[0] !== ALG_COSIGNATURE_V1 && raw[0] !== ALG_ED25519)) {
      throw new VerifyError("witness verifier key must be an Ed25519 cosignature/v1 key (type byte 0x04 and 32 key bytes)");
    }
    const publicKey = raw.slice(1);
    if (hex(await cosignatureKeyHash(name, raw[0], publicKey)) !== hexhash) {
      throw new VerifyError("witness verifier key hash does not match its name and key");
    }
    const keyId = await cosignatureKeyHash(name, ALG_COSIGNATURE_V1, publicKey);
    const canonical = `${name}+${hex(keyId)}+${b64encode(concat(new Uint8Array([ALG_COSIGNATURE_V1]), publicKey))}`;
    return { name, keyId, publicKey, toString: () => canonical };
  }

  function decodeSignature(b64) {
    const raw = b64decodeCanonical(b64, "its signature");
    if (raw.length < 5) throw new VerifyError("its signature is too short to hold a key hash and a signature");
    return raw;
  }

  /* split_note: the note's text and its signature lines, decoded. With a malformed array, a line whose signature
     is not canonical base64 (or too short) is put there as {name, why} and left out, instead of failing the note. */
  function splitNote(note, malformed) {
    if (typeof note !== "string") throw new VerifyError("signed note must be text");
    if (note.includes("\r")) throw new VerifyError("signed note has CR characters (CRLF line ends?): C2SP signed notes end lines with LF only");
    if (!note.endsWith("\n")) throw new VerifyError("signed note must end with a newline");
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new VerifyError("signed note has no blank line before its signatures");
    const text = note.slice(0, split + 1);
    checkText(text);
    const lines = note.slice(split + 2, -1).split("\n");
    if (lines.length === 0 || lines.length > MAX_SIGNATURES) throw new VerifyError("signed note must have between 1 and 100 signature lines");
    const out = [];
    for (const line of lines) {
      if (!line.startsWith(SIG_PREFIX)) throw new VerifyError(`signature line must start with an em dash and a space: ${repr(line.slice(0, 40))}`);
      const rest = line.slice(SIG_PREFIX.length);
      const sp = rest.indexOf(" ");
      const name = sp < 0 ? rest : rest.slice(0, sp), b64 = sp < 0 ? "" : rest.slice(sp + 1);
      if (sp < 0 || !name || !b64 || b64.includes(" ")) throw new VerifyError("signature line must be '— <key name> <base64 signature>'");
      let raw;
      try {
        raw = decodeSignature(b64);
      } catch (e) {
        if (!(e instanceof VerifyError)) throw e;
        if (!malformed) throw new VerifyError(`signature line by ${name}: ${e.message}`);
        malformed.push({ name, why: e.message });
        continue;
      }
      out.push({ name, keyId: raw.slice(0, 4), body: raw.slice(4) });
    }
    return { text, lines: out };
  }

  function isoSeconds(ts) { return new Date(Number(ts) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"); }

  /* verify_cosigned: the log's signature and at least minWitnesses distinct trusted witnesses' valid cosignatures.
     Witnesses are counted by raw public key (cosignature/v1 does not sign the name): one key under two names counts once. */
  async function verifyCosigned(note, logVerifier, witnessVerifiers, minWitnesses, origin, now) {
    const result = { ok: false, witnesses: [], minWitnesses, problems: [], notes: [] };
    const trusted = new Map(), firstName = new Map();
    for (const w of witnessVerifiers) {
      const raw = hex(w.publicKey);
      if (raw === hex(logVerifier.publicKey)) {  // whoever holds the log's key could "cosign" its own fork
        result.problems.push(`witness key ${w.name} is the log's own key: a log cannot witness itself`);
        continue;
      }
      if (firstName.has(raw) && firstName.get(raw) !== w.name) {
        result.notes.push(`witness key ${w.name} has the same public key as ${firstName.get(raw)}: one witness, counted once`);
      }
      if (!firstName.has(raw)) firstName.set(raw, w.name);
      trusted.set(w.name + "+" + hex(w.keyId), w);
    }
    if (minWitnesses > firstName.size) {
      result.problems.push(`the policy needs ${minWitnesses} ${minWitnesses === 1 ? "witness" : "witnesses"} but trusts only ${firstName.size}`);
    }
    let parsed;
    const malformed = [];
    try {
      parsed = splitNote(note, malformed);
      await openCheckpoint(note, logVerifier, origin);
      parseCheckpoint(parsed.text);
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      result.problems.push(`log signature: ${e.message}`);
      return result;
    }
    const trustedNames = new Set(Array.from(trusted.values(), (w) => w.name));
    for (const m of malformed) {
      if (trustedNames.has(m.name)) result.problems.push(`signature line by ${m.name}: ${m.why}`);
      else result.notes.push(`signature line by ${m.name}: ${m.why} (not a trusted key; ignored)`);
    }
    const clock = now !== undefined ? BigInt(now) : BigInt(Math.floor(Date.now() / 1000));
    const seen = new Set();  // raw public keys already counted
    for (const line of parsed.lines) {
      const w = trusted.get(line.name + "+" + hex(line.keyId));
      if (!w || seen.has(hex(w.publicKey))) continue;
      if (line.body.length !== 8 + 64) {
        result.problems.push(`signature by ${line.name} is not a cosignature/v1 (timestamp and Ed25519 signature)`);
        continue;
      }
      const ts = new DataView(line.body.buffer, line.body.byteOffset, 8).getBigUint64(0, false);
      if (ts > (1n << 63n) - 1n) {
        result.problems.push(`cosignature by ${line.name} has a timestamp over 2**63 - 1`);
        continue;
      }
      const message = concat(utf8.encode(`cosignature/v1\ntime ${ts}\n`), utf8.encode(parsed.text));
      if (!(await ed25519Verify(w.publicKey, message, line.body.slice(8)))) {
        result.problems.push(`cosignature by witness ${w.name} does not verify: the checkpoint or the line was altered`);
        continue;
      }
      if (ts > clock + BigInt(MAX_FUTURE_SECONDS)) {
        result.problems.push(`cosignature by witness ${w.name} is dated ${ts}, in the future`);
        continue;
      }
      seen.add(hex(w.publicKey));
      result.witnesses.push({ name: w.name, verifier_key: String(w), timestamp: Number(ts), time: isoSeconds(ts) });
    }
    if (result.witnesses.length < minWitnesses) {
      result.problems.push("too few trusted witnesses cosigned this checkpoint");
    }
    result.ok = result.problems.length === 0;
    return result;
  }

  /* CosignedCheckpoint.summary */
  function cosignedSummary(r) {
    const who = r.witnesses.length === 0 ? "no trusted witness cosigned it"
      : "cosigned by " + r.witnesses.map((w) => `${w.name} at ${w.time}`).join(", ");
    return `${who} (${r.witnesses.length} cosigned, ${r.minWitnesses} required)`;
  }

  // ------------------------------------------------------------ RFC 9162 inclusion proofs (merkle.py)
  function checkHash(value, what) {
    if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
      throw new VerifyError(`${what} must be a ${HASH_SIZE}-byte hash, got ${value instanceof Uint8Array ? value.length : typeof value}`);
    }
  }

  /* RFC 9162 2.1.3.2 steps 1-4; index and treeSize as BigInt or safe integers. */
  async function rootFromInclusionProof(index, treeSize, leaf, proof) {
    const idx = BigInt(index), size = BigInt(treeSize);
    if (idx < 0n || size < 0n) throw new VerifyError("index and tree size must not be negative");
    if (idx >= size) throw new VerifyError(`index ${idx} is outside a tree of size ${size}`);
    checkHash(leaf, "leaf hash");
    let fn = idx, sn = size - 1n, r = leaf;
    for (let i = 0; i < proof.length; i++) {
      const p = proof[i];
      checkHash(p, `inclusion proof hash ${i}`);
      if (sn === 0n) throw new VerifyError(`inclusion proof has too many hashes (${proof.length}) for index ${idx} in a tree of size ${size}`);
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new VerifyError(`inclusion proof has too few hashes (${proof.length}) for index ${idx} in a tree of size ${size}`);
    return r;
  }

  /* verify_consistency: RFC 9162 2.1.4.2 with C2SP merkle-tree's empty-tree and equal-size cases; sizes as BigInt. */
  async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
    const m = BigInt(oldSize), n = BigInt(newSize);
    if (m < 0n || n < 0n) throw new VerifyError("tree sizes must not be negative");
    if (m > n) throw new VerifyError(`old tree size ${m} is larger than new tree size ${n}`);
    const emptyRoot = await sha256(new Uint8Array(0));
    if (m === n) {
      if (proof.length) throw new VerifyError(`consistency proof between equal tree sizes must be empty, got ${proof.length} hashes`);
      if (m === 0n && (!equalBytes(oldRoot, emptyRoot) || !equalBytes(newRoot, emptyRoot))) {
        throw new VerifyError("the root of the empty tree must be SHA-256 of the empty string");
      }
      if (!equalBytes(oldRoot, newRoot)) throw new VerifyError(`roots differ at equal tree size ${m}`);
      return;
    }
    if (m === 0n) {
      if (proof.length) throw new VerifyError(`consistency proof from the empty tree must be empty, got ${proof.length} hashes`);
      if (!equalBytes(oldRoot, emptyRoot)) throw new VerifyError("the root of the empty tree must be SHA-256 of the empty string");
      checkHash(newRoot, "new root hash");
      return;
    }
    checkHash(oldRoot, "old root hash");
    checkHash(newRoot, "new root hash");
    if (!proof.length) throw new VerifyError(`consistency proof from tree size ${m} to ${n} must not be empty`);
    proof.forEach((p, i) => checkHash(p, `consistency proof hash ${i}`));
    const path = (m & (m - 1n)) === 0n ? [oldRoot, ...proof] : [...proof];
    let fn = m - 1n, sn = n - 1n;
    while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
    let fr = path[0], sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0n) throw new VerifyError(`consistency proof has too many hashes (${proof.length}) for sizes ${m} -> ${n}`);
      if ((fn & 1n) === 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new VerifyError(`consistency proof has too few hashes (${proof.length}) for sizes ${m} -> ${n}`);
    if (!equalBytes(fr, oldRoot)) throw new VerifyError(`consistency proof does not match the old root of tree size ${m}`);
    if (!equalBytes(sr, newRoot)) throw new VerifyError(`consistency proof does not match the new root of tree size ${n}`);
  }

  async function verifyInclusion(index, treeSize, leaf, proof, root) {
    checkHash(root, "root hash");
    if (!equalBytes(await rootFromInclusionProof(index, treeSize, leaf, proof), root)) {
      throw new VerifyError(`inclusion proof for index ${index} does not match the root of tree size ${treeSize}`);
    }
  }

  // ------------------------------------------------------------ entries (entries.py)
  /* RFC 8785: ECMAScript number and string serialisation, object keys sorted by UTF-16 code units. */
  function canonicalJSON(value) {
    if (value === null || typeof value === "boolean") return JSON.stringify(value);
    if (typeof value === "number") {
      if (!Number.isFinite(value)) throw new VerifyError("NaN and infinity are not allowed");
      return JSON.stringify(value);
    }
    if (typeof value === "string") return JSON.stringify(value);
    if (Array.isArray(value)) return "[" + value.map(canonicalJSON).join(",") + "]";
    if (typeof value === "object") {
      const keys = Object.keys(value).sort();
      return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalJSON(value[k])).join(",") + "}";
    }
    throw new VerifyError(`not representable as canonical JSON: ${typeof value}`);
  }

  function fieldError(field, message) { return new VerifyError(`field '${field}': ${message}`); }

  function requireField(obj, key, kind) {
    if (!(key in obj)) throw fieldError(key, "is required");
    const v = obj[key];
    const ok = kind === "int" ? Number.isInteger(v) : kind === "object" ? v !== null && typeof v === "object" && !Array.isArray(v) : typeof v === kind;
    if (!ok) throw fieldError(key, `must be ${kind === "string" ? "str" : kind === "object" ? "dict" : kind}`);
    return v;
  }

  function digest(obj, key, optional) {
    if (optional && (obj[key] === undefined || obj[key] === null)) return;
    if (!DIGEST.test(requireField(obj, key, "string"))) throw fieldError(key, "must be 'sha256:' followed by 64 lowercase hex digits");
  }

  function time(obj, key) {
    const v = requireField(obj, key, "string");
    if (!TIME.test(v)) throw fieldError(key, `time must be RFC 3339 UTC like 2026-11-29T08:00:00Z, got ${repr(v)}`);
  }

  function name(obj, key) {
    const v = requireField(obj, key, "string");
    if (!v) throw fieldError(key, "must not be empty");
    if (/[\p{C}\p{Zl}\p{Zp}]/u.test(v) || /[^\S ]/u.test(v) || v.length > 200) throw fieldError(key, "must be printable text of at most 200 characters");
  }

  function oneOf(obj, pub, committed) {
    if ((pub in obj) === (committed in obj)) {
      throw fieldError(pub, `exactly one of '${pub}' (public) and '${committed}' (commitment) is required`);
    }
    if (!(pub in obj)) digest(obj, committed);
  }

  const SCHEMAS = {
    decision(obj) {
      digest(obj, "model"); name(obj, "deployment"); time(obj, "time"); digest(obj, "input"); digest(obj, "subject", true);
      oneOf(obj, "output", "output_commitment");
    },
    outcome(obj) {
      const d = requireField(obj, "decision", "int");
      if (d < 0) throw fieldError("decision", "must be a decision's index (>= 0)");
      oneOf(obj, "outcome", "outcome_commitment");
      time(obj, "time");
    },
  };

  /* Entry.from_bytes: UTF-8 JSON object of a known type and version, its schema, RFC 8785 canonical form. */
  function checkEntry(bytes) {
    if (bytes.length > MAX_ENTRY_BYTES) throw new VerifyError(`entry is ${bytes.length} bytes, the limit is ${MAX_ENTRY_BYTES}`);
    let text, obj;
    try { text = strictUtf8.decode(bytes); } catch (e) { throw new VerifyError("entry is not valid UTF-8"); }
    try { obj = JSON.parse(text); } catch (e) { throw new VerifyError(`entry is not valid JSON: ${e.message}`); }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
      throw new VerifyError(`an entry must be a JSON object, got ${Array.isArray(obj) ? "list" : obj === null ? "NoneType" : typeof obj}`);
    }
    const kind = requireField(obj, "type", "string");
    const version = requireField(obj, "v", "int");
    if (!ENTRY_TYPES.includes(kind)) throw fieldError("type", `unknown entry type ${repr(kind)}; known: ${[...ENTRY_TYPES].sort().join(", ")}`);
    if (version !== 1) throw fieldError("v", `unsupported schema version ${version} (this glasslog writes 1)`);
    if (SCHEMAS[kind]) SCHEMAS[kind](obj);
    let canonical;
    try { canonical = canonicalJSON(obj); } catch (e) { canonical = null; }
    if (canonical !== text) throw new VerifyError("entry is not in RFC 8785 canonical form (key order, whitespace or number/string form)");
    return obj;
  }

  // ------------------------------------------------------------ receipts (receipt.py, verify/receipts.py)
  function receiptB64(value, field) {
    if (typeof value !== "string") throw new VerifyError(`receipt field '${field}' must be a base64 string`);
    const raw = b64decode(value);
    if (raw === null) throw new VerifyError(`receipt field '${field}' is not valid base64`);
    return raw;
  }

  /* Receipt.from_json / from_dict: the receipt's fields, strictly. */
  function parseReceipt(input) {
    let d = input;
    if (typeof input === "string") {
      try { d = JSON.parse(input); } catch (e) { throw new VerifyError(`receipt is not valid JSON: ${e.message}`); }
    }
    if (d === null || typeof d !== "object" || Array.isArray(d)) throw new VerifyError("a receipt must be a JSON object");
    if (d.format !== RECEIPT_FORMAT) throw new VerifyError(`receipt field 'format' must be '${RECEIPT_FORMAT}', got ${JSON.stringify(d.format)}`);
    for (const [field, kind] of [["origin", "str"], ["index", "int"], ["tree_size", "int"], ["checkpoint", "str"], ["inclusion_proof", "list"]]) {
      if (!(field in d)) throw new VerifyError(`receipt field '${field}' is missing`);
      const v = d[field];
      const ok = kind === "str" ? typeof v === "string" : kind === "int" ? Number.isInteger(v) : Array.isArray(v);
      if (!ok) throw new VerifyError(`receipt field '${field}' must be ${kind}`);
      if (kind === "int" && !Number.isSafeInteger(v)) throw new VerifyError(`receipt field '${field}' is beyond the integers this page can check exactly (2**53)`);
    }
    if (d.index < 0 || d.tree_size <= d.index) throw new VerifyError("receipt fields 'index' and 'tree_size' must satisfy 0 <= index < tree_size");
    const priv = {};
    const given = d.private === undefined || d.private === null ? {} : d.private;
    if (typeof given !== "object" || Array.isArray(given)) throw new VerifyError("receipt field 'private' must be an object");
    for (const [kind, opening] of Object.entries(given)) {
      if (opening === null || typeof opening !== "object" || Array.isArray(opening)) {
        throw new VerifyError(`receipt field 'private.${kind}' must be an object with salt and value`);
      }
      priv[kind] = { salt: receiptB64(opening.salt, `private.${kind}.salt`), value: receiptB64(opening.value, `private.${kind}.value`) };
    }
    let previous = null;
    if (d.previous !== undefined && d.previous !== null) {
      const p = d.previous;
      if (typeof p !== "object" || Array.isArray(p) || typeof p.checkpoint !== "string" || !Array.isArray(p.consistency_proof)) {
        throw new VerifyError("receipt field 'previous' must be an object with 'checkpoint' (text) and 'consistency_proof' (a list)");
      }
      previous = { checkpoint: p.checkpoint,
                   proof: p.consistency_proof.map((h, i) => receiptB64(h, `previous.consistency_proof[${i}]`)) };
    }
    return {
      origin: d.origin, index: d.index, entry: receiptB64(d.entry, "entry"), treeSize: d.tree_size, checkpoint: d.checkpoint,
      inclusionProof: d.inclusion_proof.map((p, i) => receiptB64(p, `inclusion_proof[${i}]`)), private: priv, previous,
    };
  }

  /* commitments.py check_commitment: "sha256:" + hex(SHA-256(salt || value)), 32-byte salt. */
  async function checkCommitment(commitment, salt, value) {
    if (salt.length !== 32) return false;
    return "sha256:" + hex(await sha256(concat(salt, value))) === commitment;
  }

  /* verify_receipt: returns {ok, checks: [{name, ok, detail}], entry, index, tree_size}; never throws for a bad receipt.
   * Where this browser cannot run the check, {ok: false, unavailable: <why>, checks: []}: no check failed. */
  /* _subject_check: the entry's subject commitment must open, with the receipt's salt, to the id given. */
  async function subjectCheck(entry, opening, subject) {
    const commitment = entry.subject;
    if (typeof commitment !== "string") return { name: "subject", ok: false, detail: "the entry names no subject, so it is not a decision about you" };
    if (!opening) {
      return { name: "subject", ok: false, detail: "the receipt does not open the entry's subject commitment, so it cannot show whose decision it is" };
    }
    const wanted = utf8.encode(canonicalJSON(subject));
    if (!equalBytes(opening.value, wanted) || !(await checkCommitment(commitment, opening.salt, opening.value))) {
      return { name: "subject", ok: false, detail: `the decision is not about ${repr(subject)}: its subject commitment opens to another id` };
    }
    return { name: "subject", ok: true, detail: `the decision is about ${repr(subject)}: its subject commitment opens to that id` };
  }

  async function verifyReceipt(receiptInput, verifierKey, witnessKeys, minWitnesses, subject) {
    const why = unavailable();
    if (why !== null) return { ok: false, unavailable: why, checks: [], entry: null, index: null, tree_size: null, private: {} };
    try {
      return await runChecks(receiptInput, verifierKey, witnessKeys || [], minWitnesses || 0,
                             subject === undefined || subject === "" ? null : subject);
    } catch (e) {
      if (!(e instanceof UnavailableError)) throw e;
      return { ok: false, unavailable: e.message, checks: [], entry: null, index: null, tree_size: null, private: {} };
    }
  }

  async function runChecks(receiptInput, verifierKey, witnessKeys, minWitnesses, subject) {
    const report = { ok: false, checks: [], entry: null, index: null, tree_size: null, private: {}, witnesses: [] };
    const add = (name, ok, detail) => report.checks.push({ name, ok, detail });
    let receipt;
    try {
      receipt = parseReceipt(receiptInput);
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      add("receipt format", false, e.message);
      return report;
    }
    report.index = receipt.index;
    report.tree_size = receipt.treeSize;
    let verifier;
    try {
      verifier = await parseVerifierKey(verifierKey);
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      add("verifier key", false, e.message);
      return report;
    }
    let cp;
    try {
      cp = await openCheckpoint(receipt.checkpoint, verifier, receipt.origin);
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      add("checkpoint signature", false, e.message);
      return report;
    }
    add("checkpoint signature", true, `signed by ${verifier.name}+${hex(verifier.keyId)}, tree size ${cp.treeSize}`);
    if (witnessKeys.length || minWitnesses) {
      let policy;
      try {
        const keys = [];
        for (const k of witnessKeys) keys.push(await parseCosignatureKey(k));
        if (!Number.isInteger(minWitnesses) || minWitnesses < 0) throw new VerifyError("min_witnesses must be a whole number >= 0");
        policy = await verifyCosigned(receipt.checkpoint, verifier, keys, minWitnesses, receipt.origin);
      } catch (e) {
        if (!(e instanceof VerifyError)) throw e;
        add("witnesses", false, `witness policy: ${e.message}`);
        return report;
      }
      report.witnesses = policy.witnesses;
      add("witnesses", policy.ok, cosignedSummary(policy) + policy.notes.map((n) => "; " + n).join("")
          + (policy.ok ? "" : ": " + policy.problems.join("; ")));
      if (!policy.ok) return report;
    }
    if (cp.treeSize !== BigInt(receipt.treeSize)) {
      add("tree size", false, `receipt says tree size ${receipt.treeSize}, the signed checkpoint says ${cp.treeSize}`);
      return report;
    }
    try {
      report.entry = checkEntry(receipt.entry);
      add("entry format", true, `canonical JSON, type ${report.entry.type}`);
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      report.entry = null;
      add("entry format", false, e.message);
      return report;
    }
    const leaf = await leafHash(receipt.entry);
    report.leaf_hash = hex(leaf);
    try {
      await verifyInclusion(receipt.index, cp.treeSize, leaf, receipt.inclusionProof, cp.rootHash);
      add("inclusion proof", true, `entry ${receipt.index} is in the signed tree of size ${cp.treeSize}`);
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      add("inclusion proof", false, e.message);
      return report;
    }
    if (receipt.previous) {
      let prev;
      try {
        prev = await openCheckpoint(receipt.previous.checkpoint, verifier, receipt.origin);
        await verifyConsistency(prev.treeSize, cp.treeSize, prev.rootHash, cp.rootHash, receipt.previous.proof);
      } catch (e) {
        if (!(e instanceof VerifyError)) throw e;
        add("earlier checkpoint", false, `the receipt's earlier checkpoint: ${e.message}`);
        return report;
      }
      add("earlier checkpoint", true, `the log at tree size ${cp.treeSize} extends the receipt's earlier checkpoint at tree size ` +
          `${prev.treeSize} (consistency proof of ${receipt.previous.proof.length} hashes)`);
    }
    let allOk = true;
    for (const kind of Object.keys(receipt.private).sort()) {
      const { salt, value } = receipt.private[kind];
      const commitment = report.entry[COMMITMENT_FIELDS[kind] || kind];
      if (typeof commitment !== "string") {
        add(`${kind} commitment`, false, `the entry has no ${kind} commitment to open`);
        allOk = false;
      } else if (await checkCommitment(commitment, salt, value)) {
        add(`${kind} commitment`, true, `the ${kind} value in the receipt matches the logged commitment`);
        try { report.private[kind] = JSON.parse(strictUtf8.decode(value)); } catch (e) { /* shown as unreadable */ }
      } else {
        add(`${kind} commitment`, false, `the ${kind} value in the receipt does not match the logged commitment`);
        allOk = false;
      }
    }
    if (subject !== null) {
      const c = await subjectCheck(report.entry, receipt.private.subject, subject);
      add(c.name, c.ok, c.detail);
      allOk = allOk && c.ok;
    }
    report.ok = allOk;
    return report;
  }

  /* How many witnesses the keys name, counted by raw public key (one key under two names is one witness); a key that
     does not parse counts by its text (the policy check then reports it). */
  async function distinctWitnesses(keys) {
    const seen = new Set();
    for (const k of keys) {
      try {
        seen.add(hex((await parseCosignatureKey(k)).publicKey));
      } catch (e) {
        if (!(e instanceof VerifyError)) throw e;
        seen.add("text:" + k);
      }
    }
    return seen.size;
  }

  window.GlasslogVerify = {
    VerifyError, UnavailableError, unavailable, RECEIPT_FORMAT, parseVerifierKey, openNote, parseCheckpoint, openCheckpoint, rootFromInclusionProof,
    verifyInclusion, leafHash, checkEntry, canonicalJSON, parseReceipt, checkCommitment, verifyReceipt, b64decode, b64encode, hex,
    parseCosignatureKey, splitNote, verifyCosigned, cosignedSummary, verifyConsistency, distinctWitnesses,
  };
})();
