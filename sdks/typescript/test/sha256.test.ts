// The SDK's own synchronous SHA-256 and HMAC-SHA256 (src/sha256.ts, used by SigV4): the FIPS 180-4 examples from
// NIST's "Cryptographic Standards and Guidelines: Examples with Intermediate Values", the RFC 4231 HMAC-SHA256 test
// cases, and node:crypto on every length that crosses the padding boundaries, fed whole and in pieces.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { HmacSha256, Sha256, hmacSha256, sha256 } from "../src/sha256.js";
import { toHex } from "../src/sigv4.js";

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, "hex"));

test("SHA-256 gives the FIPS 180-4 example digests", () => {
  const cases: Array<[string, string]> = [
    ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
    ["abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"],
    ["abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"],
    ["a".repeat(1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"],
  ];
  for (const [message, digest] of cases) {
    assert.equal(toHex(sha256(message)), digest, `SHA-256 of ${message.length} bytes`);
  }
});

test("HMAC-SHA256 gives the RFC 4231 test case results", () => {
  const cases: Array<[Uint8Array, Uint8Array, string]> = [
    [hex("0b".repeat(20)), new TextEncoder().encode("Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"],
    [new TextEncoder().encode("Jefe"), new TextEncoder().encode("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"],
    [hex("aa".repeat(20)), hex("dd".repeat(50)), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"],
    [hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), hex("cd".repeat(50)), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"],
    [hex("0c".repeat(20)), new TextEncoder().encode("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b"],
    [hex("aa".repeat(131)), new TextEncoder().encode("Test Using Larger Than Block-Size Key - Hash Key First"), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"],
    [hex("aa".repeat(131)), new TextEncoder().encode("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"],
  ];
  for (const [i, [key, data, expected]] of cases.entries()) {
    assert.equal(toHex(hmacSha256(key, data)).slice(0, expected.length), expected, `RFC 4231 test case ${i + 1}`);
  }
});

test("SHA-256 and HMAC-SHA256 agree with node:crypto for every length across the padding boundaries, whole or in pieces", () => {
  const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff);
  const key = new HmacSha256("key");
  for (let length = 0; length <= 300; length++) {
    const message = data.subarray(0, length);
    const expected = createHash("sha256").update(message).digest("hex");
    assert.equal(toHex(sha256(message)), expected, `length ${length}`);
    const pieces = new Sha256();
    for (let at = 0; at < length; at += 1 + (at % 70)) {
      pieces.update(message.subarray(at, Math.min(length, at + 1 + (at % 70))));
    }
    assert.equal(toHex(pieces.digest()), expected, `length ${length} in pieces`);
    assert.equal(toHex(key.mac(message)), createHmac("sha256", "key").update(message).digest("hex"), `HMAC of length ${length}`);
  }
  const text = "héllo wörld ☃ 𝄞 ".repeat(20);
  assert.equal(toHex(sha256(text)), createHash("sha256").update(text, "utf8").digest("hex"), "UTF-8 of a string");
});
