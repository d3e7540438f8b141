// memberlist security.go and keyring.go behaviour: blob layout checked against AES-GCM known
// answers, version 0 padding, AAD binding, key trial order, short blobs, keyring rules, Go's
// base64 errors for bad keys, and a fuzz of decryptPayload (GossipCryptoError only).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeStdBase64,
  decryptPayload,
  encryptedLength,
  encryptionVersionFor,
  encryptOverheadBytes,
  encryptPayload,
  formatGossipKey,
  GossipCryptoError,
  Keyring,
  parseGossipKey,
  type RandomBytes,
} from '../lib/gossipcrypto.js';
import { seededRng } from '../lib/rng.js';

const zeroNonce: RandomBytes = (n) => new Uint8Array(n);

function seededBytes(seed: number): RandomBytes {
  const rng = seededRng(seed);
  return (n) => Uint8Array.from({ length: n }, () => Math.floor(rng() * 256));
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function isCode(code: string): (error: unknown) => boolean {
  return (error) => error instanceof GossipCryptoError && error.code === code;
}

const KEY16 = new Uint8Array(16);
const KEY32 = Uint8Array.from({ length: 32 }, (_, i) => i);

describe('gossipcrypto', () => {
  it('lays out version 1 blobs as vsn | nonce | ciphertext | tag (GCM spec test cases 1 and 2)', () => {
    assert.equal(hex(encryptPayload(1, KEY16, new Uint8Array(0), null, zeroNonce)), '01' + '00'.repeat(12) + '58e2fccefa7e3061367f1d57a4e7455a');
    assert.equal(hex(encryptPayload(1, KEY16, new Uint8Array(16), null, zeroNonce)), '01' + '00'.repeat(12) + '0388dace60b6a392f328c2b971b2fe78' + 'ab6e47d42cec13bdf53a67b21257bddf');
  });

  it('pads version 0 with PKCS#7 (1..16 bytes) and strips it on decrypt', () => {
    for (const size of [0, 1, 15, 16, 17, 100]) {
      const plain = Uint8Array.from({ length: size }, (_, i) => i);
      const blob = encryptPayload(0, KEY32, plain, null, seededBytes(size));
      assert.equal(blob[0], 0);
      assert.equal(blob.length, encryptedLength(0, size));
      assert.equal((blob.length - 29) % 16, 0);
      assert.deepEqual(decryptPayload([KEY32], blob, null), plain);
    }
    // Empty plaintext under version 0 seals one whole block of 0x10.
    assert.equal(encryptPayload(0, KEY16, new Uint8Array(0), null, zeroNonce).length, 45);
  });

  it('names the overheads the gossip budget subtracts: 29 for version 1, 45 for version 0', () => {
    assert.equal(encryptOverheadBytes(1), 29);
    assert.equal(encryptOverheadBytes(0), 45);
    assert.equal(encryptedLength(1, 100), 129);
    assert.equal(encryptionVersionFor(1), 0);
    assert.equal(encryptionVersionFor(2), 1);
    assert.equal(encryptionVersionFor(5), 1);
  });

  it('binds the AAD: a stream header or label that differs makes the blob undecryptable', () => {
    const aad = Uint8Array.of(0x0a, 0, 0, 0, 40);
    const blob = encryptPayload(1, KEY32, Uint8Array.of(1, 2, 3), aad, seededBytes(1));
    assert.deepEqual(decryptPayload([KEY32], blob, aad), Uint8Array.of(1, 2, 3));
    assert.throws(() => decryptPayload([KEY32], blob, null), isCode('ERR_GOSSIP_DECRYPT_FAILED'));
    assert.throws(() => decryptPayload([KEY32], blob, Uint8Array.of(0x0a, 0, 0, 0, 41)), isCode('ERR_GOSSIP_DECRYPT_FAILED'));
  });

  it('tries every key, with AES-128, -192 and -256', () => {
    const keys = [new Uint8Array(16).fill(1), new Uint8Array(24).fill(2), new Uint8Array(32).fill(3)];
    for (const key of keys) {
      const blob = encryptPayload(1, key, Uint8Array.of(9), null, seededBytes(key.length));
      assert.deepEqual(decryptPayload(keys, blob, null), Uint8Array.of(9));
      assert.throws(() => decryptPayload(keys.filter((k) => k !== key), blob, null), isCode('ERR_GOSSIP_DECRYPT_FAILED'));
    }
  });

  it('rejects empty, unknown-version and too-short blobs before trying keys', () => {
    assert.throws(() => decryptPayload([KEY16], new Uint8Array(0), null), isCode('ERR_GOSSIP_DECRYPT_EMPTY'));
    assert.throws(() => decryptPayload([KEY16], Uint8Array.of(2, ...new Uint8Array(40)), null), isCode('ERR_GOSSIP_DECRYPT_VERSION'));
    assert.throws(() => decryptPayload([KEY16], new Uint8Array(28).fill(1, 0, 1), null), isCode('ERR_GOSSIP_DECRYPT_SHORT'));
    assert.throws(() => decryptPayload([KEY16], new Uint8Array(44), null), isCode('ERR_GOSSIP_DECRYPT_SHORT'));
  });

  it('keyring: the first key is primary, known keys are a no-op, use promotes, the primary cannot be removed', () => {
    const a = new Uint8Array(16).fill(0xa);
    const b = new Uint8Array(16).fill(0xb);
    const c = new Uint8Array(32).fill(0xc);
    assert.equal(new Keyring().isEnabled, false);
    assert.equal(new Keyring().getPrimaryKey(), null);
    assert.throws(() => new Keyring([a]), isCode('ERR_GOSSIP_KEYRING_EMPTY'));
    const ring = new Keyring([b, c], a);
    assert.deepEqual(ring.getKeys(), [a, b, c]);
    ring.addKey(b);
    assert.equal(ring.getKeys().length, 3);
    ring.useKey(c);
    assert.deepEqual(ring.getKeys(), [c, a, b]);
    assert.throws(() => ring.useKey(new Uint8Array(16)), isCode('ERR_GOSSIP_KEY_NOT_INSTALLED'));
    assert.throws(() => ring.removeKey(c), isCode('ERR_GOSSIP_KEY_PRIMARY'));
    ring.removeKey(a);
    ring.removeKey(new Uint8Array(24));
    assert.deepEqual(ring.getKeys(), [c, b]);
    assert.throws(() => ring.addKey(new Uint8Array(20)), isCode('ERR_GOSSIP_KEY_SIZE'));
    assert.deepEqual(ring.listKeys(), [formatGossipKey(c), formatGossipKey(b)]);
    // Copies: mutating what we got back changes nothing inside.
    const primary = ring.getPrimaryKey();
    assert.ok(primary);
    primary.fill(0);
    assert.deepEqual(ring.getPrimaryKey(), c);
  });

  it('parses base64 keys with Go and Consul error texts', () => {
    assert.deepEqual(parseGossipKey('i0P+gFTkLPg0h53eNYjydg==').length, 16);
    assert.equal(formatGossipKey(parseGossipKey('i0P+gFTkLPg0h53eNYjydg==')), 'i0P+gFTkLPg0h53eNYjydg==');
    // Consul's config test: "encrypt has invalid key: illegal base64 data at input byte 4".
    assert.throws(() => parseGossipKey('this is not a valid key'), (error: unknown) => error instanceof GossipCryptoError && error.code === 'ERR_GOSSIP_KEY_BASE64' && error.message === 'illegal base64 data at input byte 4');
    assert.throws(() => parseGossipKey(Buffer.alloc(10).toString('base64')), (error: unknown) => error instanceof GossipCryptoError && error.message === 'key size must be 16, 24 or 32 bytes');
    const offsets: [string, number][] = [
      ['abc', 0],
      ['ab=c', 2],
      ['abc=x', 4],
      ['a===', 1],
      ['ab=', 3],
      ['abcd*', 4],
    ];
    for (const [text, offset] of offsets) assert.throws(() => decodeStdBase64(text), (error: unknown) => error instanceof GossipCryptoError && error.message === `illegal base64 data at input byte ${offset}`, text);
    assert.equal(Buffer.from(decodeStdBase64('YWJj\nZGVm')).toString(), 'abcdef');
    assert.equal(Buffer.from(decodeStdBase64('YQ==')).toString(), 'a');
    assert.equal(Buffer.from(decodeStdBase64('YWI=')).toString(), 'ab');
    assert.equal(decodeStdBase64('').length, 0);
  });

  it('fuzz: mutated and truncated blobs only ever throw GossipCryptoError', () => {
    const rng = seededRng(99);
    const keys = [KEY16, KEY32];
    const seeds = [encryptPayload(1, KEY32, new Uint8Array(50), null, seededBytes(3)), encryptPayload(0, KEY16, new Uint8Array(33), null, seededBytes(4))];
    let opened = 0;
    for (let i = 0; i < 3000; i++) {
      const base = seeds[i % seeds.length] ?? new Uint8Array(0);
      const blob = base.slice(0, Math.floor(rng() * (base.length + 1)));
      if (rng() < 0.7 && blob.length > 0) {
        const at = Math.floor(rng() * blob.length);
        blob[at] = (blob[at] ?? 0) ^ (1 + Math.floor(rng() * 255));
      }
      try {
        decryptPayload(keys, blob, null);
        opened++;
      } catch (error) {
        assert.ok(error instanceof GossipCryptoError, `seed 99 iteration ${i}: ${String(error)}`);
      }
    }
    assert.ok(opened < 3000 * 0.2);
  });
});
