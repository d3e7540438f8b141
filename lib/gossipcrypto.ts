// Gossip encryption as memberlist does it: AES-GCM with a version byte, a random nonce and an
// optional authenticated-data prefix, plus the keyring that decides which key encrypts and which
// keys may decrypt.
//
// Blob layout (shared/spec/wire.md §2.6, memberlist security.go):
//   vsn(1) | nonce(12) | ciphertext | tag(16)
// Version 1 seals the plaintext as is. Version 0 first pads it PKCS#7-style to a multiple of 16
// bytes (1..16 pad bytes) and strips the padding after opening; memberlist uses version 0 only
// when its protocol version is 1, and accepts both. Keys of 16, 24 or 32 bytes select AES-128,
// -192 or -256. Additional authenticated data: none for packets with memberlist 0.2.2 (the label
// bytes with ≥0.3.0 when a label is set); for streams the 5 header bytes `0a` + u32 BE blob
// length (plus the label with ≥0.3.0). Building those AAD bytes is gossipwire.ts's job.
//
// Keyring semantics follow memberlist keyring.go: the primary key is always first, encrypts
// everything, and is tried first when decrypting; adding a known key is a no-op; `use` makes an
// installed key primary; the primary key cannot be removed; removing an unknown key is a no-op.
// Persisting the keyring (Consul's serf/local.keyring JSON) is the agent's job, not this module's.
//
// Not here: sockets, the verify-incoming/outgoing policy (gossipwire.ts applies it), key
// distribution queries (serf internal queries).
//
// Invariants: the nonce comes only from the injected `randomBytes` (tests are deterministic;
// production passes node:crypto randomBytes). decryptPayload throws nothing but
// GossipCryptoError. Keys are copied on the way in and out, so callers cannot mutate the ring.
//
// References: hashicorp/memberlist security.go, keyring.go (v0.2.2); hashicorp/consul
// agent/keyring.go initKeyring ("Invalid key: ...") and agent/config builder
// ("encrypt has invalid key: ..."), whose inner texts parseGossipKey reproduces.

import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';

// ---------------------------------------------------------------------------------------------
// Exported types

/** memberlist's encryption version byte. Wire enum: append only. */
export type EncryptionVersion = 0 | 1;

/** Source of random bytes for nonces (node:crypto randomBytes in production, seeded in tests). */
export type RandomBytes = (byteCount: number) => Uint8Array;

export type GossipCryptoErrorCode =
  | 'ERR_GOSSIP_KEY_BASE64'
  | 'ERR_GOSSIP_KEY_SIZE'
  | 'ERR_GOSSIP_KEY_NOT_INSTALLED'
  | 'ERR_GOSSIP_KEY_PRIMARY'
  | 'ERR_GOSSIP_KEYRING_EMPTY'
  | 'ERR_GOSSIP_KEYRING_FULL'
  | 'ERR_GOSSIP_DECRYPT_EMPTY'
  | 'ERR_GOSSIP_DECRYPT_VERSION'
  | 'ERR_GOSSIP_DECRYPT_SHORT'
  | 'ERR_GOSSIP_DECRYPT_FAILED'
  | 'ERR_GOSSIP_DECRYPT_PADDING';

/** A bad key, a keyring misuse or a blob that does not decrypt. The only error this module throws. */
export class GossipCryptoError extends Error {
  override readonly name = 'GossipCryptoError';
  constructor(
    readonly code: GossipCryptoErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** The newest encryption version we write and read (memberlist maxEncryptionVersion). */
export const ENCRYPTION_VERSION_MAX: EncryptionVersion = 1;
export const ENCRYPTION_VERSION_BYTES = 1;
export const ENCRYPTION_NONCE_BYTES = 12;
export const ENCRYPTION_TAG_BYTES = 16;
/** AES block size: the PKCS#7 padding unit of version 0. */
export const ENCRYPTION_BLOCK_BYTES = 16;
/** Valid key sizes (AES-128, -192, -256). */
export const GOSSIP_KEY_SIZES: readonly number[] = [16, 24, 32];
/** A keyring never holds more keys than this (Consul rotates one or two at a time). */
export const KEYRING_KEYS_MAX = 64;

// ---------------------------------------------------------------------------------------------
// Exported API

/** Encryption version to write for a memberlist protocol version (memberlist encryptionVersion). */
export function encryptionVersionFor(protocolVersion: number): EncryptionVersion {
  return protocolVersion === 1 ? 0 : 1;
}

/** Worst-case bytes encryption adds to a packet: 45 for version 0, 29 for version 1 (encryptOverhead). */
export function encryptOverheadBytes(version: EncryptionVersion): number {
  const fixed = ENCRYPTION_VERSION_BYTES + ENCRYPTION_NONCE_BYTES + ENCRYPTION_TAG_BYTES;
  return version === 0 ? fixed + ENCRYPTION_BLOCK_BYTES : fixed;
}

/** Exact blob length for a plaintext of `plaintextBytes` (memberlist encryptedLength). */
export function encryptedLength(version: EncryptionVersion, plaintextBytes: number): number {
  const fixed = ENCRYPTION_VERSION_BYTES + ENCRYPTION_NONCE_BYTES + ENCRYPTION_TAG_BYTES;
  if (version >= 1) return fixed + plaintextBytes;
  return fixed + plaintextBytes + (ENCRYPTION_BLOCK_BYTES - (plaintextBytes % ENCRYPTION_BLOCK_BYTES));
}

/** Throws ERR_GOSSIP_KEY_SIZE unless the key is 16, 24 or 32 bytes (memberlist ValidateKey). */
export function validateKey(key: Uint8Array): void {
  if (!GOSSIP_KEY_SIZES.includes(key.length)) throw new GossipCryptoError('ERR_GOSSIP_KEY_SIZE', 'key size must be 16, 24 or 32 bytes');
}

/**
 * Decodes a base64 gossip key (the `encrypt` setting, keyring files, keyring API) and checks its
 * size. Error messages are Go's inner texts: "illegal base64 data at input byte N" (Go's
 * base64.StdEncoding offsets) or "key size must be 16, 24 or 32 bytes". Consul prefixes them with
 * "encrypt has invalid key: " (config) or "Invalid key: " (keyring).
 */
export function parseGossipKey(text: string): Uint8Array {
  const key = decodeStdBase64(text);
  validateKey(key);
  return key;
}

/** Standard base64 with padding, as Consul writes keys and serf lists them. */
export function formatGossipKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

/**
 * Decodes standard base64 exactly as Go's base64.StdEncoding.DecodeString accepts it (padding
 * required, CR and LF skipped, non-zero trailing bits tolerated), with Go's error offsets.
 */
export function decodeStdBase64(text: string): Uint8Array {
  const out: number[] = [];
  let si = 0;
  for (;;) {
    const quantum: number[] = [];
    let dataLength = 4;
    let isDone = false;
    for (let j = 0; j < 4; j++) {
      if (si === text.length) {
        if (j === 0) return Uint8Array.from(out);
        throw base64Error(si - j);
      }
      const ch = text.charCodeAt(si++);
      const value = ch < 128 ? (BASE64_DECODE[ch] ?? 0xff) : 0xff;
      if (value !== 0xff) {
        quantum.push(value);
        continue;
      }
      if (ch === 0x0a || ch === 0x0d) {
        j--;
        continue;
      }
      if (ch !== 0x3d || j < 2) throw base64Error(si - 1);
      if (j === 2) {
        // "==" expected: the first '=' is consumed, the second must follow (newlines allowed).
        while (si < text.length && (text.charCodeAt(si) === 0x0a || text.charCodeAt(si) === 0x0d)) si++;
        if (si === text.length) throw base64Error(text.length);
        if (text.charCodeAt(si) !== 0x3d) throw base64Error(si - 1);
        si++;
      }
      while (si < text.length && (text.charCodeAt(si) === 0x0a || text.charCodeAt(si) === 0x0d)) si++;
      if (si < text.length) throw base64Error(si);
      dataLength = j;
      isDone = true;
      break;
    }
    const [a = 0, b = 0, c = 0, d = 0] = quantum;
    const word = (a << 18) | (b << 12) | (c << 6) | d;
    const bytes = [(word >> 16) & 0xff, (word >> 8) & 0xff, word & 0xff];
    for (let k = 0; k < dataLength - 1; k++) out.push(bytes[k] ?? 0);
    if (isDone) return Uint8Array.from(out);
  }
}

/**
 * memberlist's Keyring: an ordered set of keys whose first entry is the primary (encrypting) key.
 * An empty keyring means encryption is off.
 */
export class Keyring {
  // Invariant: keys[0] is the primary key; keys are distinct and each 16, 24 or 32 bytes long.
  private keys: Uint8Array[] = [];

  /**
   * Builds a keyring like memberlist NewKeyring: no keys at all (encryption off), or a primary key
   * plus optional others. Throws GossipCryptoError for an empty primary with other keys or a bad key.
   */
  constructor(keys: readonly Uint8Array[] = [], primaryKey?: Uint8Array) {
    if (keys.length === 0 && (primaryKey === undefined || primaryKey.length === 0)) return;
    if (primaryKey === undefined || primaryKey.length === 0) throw new GossipCryptoError('ERR_GOSSIP_KEYRING_EMPTY', 'Empty primary key not allowed');
    this.addKey(primaryKey);
    for (const key of keys) this.addKey(key);
  }

  /** True when at least one key is installed (memberlist EncryptionEnabled). */
  get isEnabled(): boolean {
    return this.keys.length > 0;
  }

  /** Installs a key for decryption; the first key installed becomes primary. Known keys are a no-op. */
  addKey(key: Uint8Array): void {
    validateKey(key);
    if (this.indexOf(key) !== -1) return;
    if (this.keys.length >= KEYRING_KEYS_MAX) throw new GossipCryptoError('ERR_GOSSIP_KEYRING_FULL', `keyring already holds ${KEYRING_KEYS_MAX} keys`);
    this.keys.push(key.slice());
  }

  /** Makes an installed key the primary. Throws ERR_GOSSIP_KEY_NOT_INSTALLED otherwise. */
  useKey(key: Uint8Array): void {
    const index = this.indexOf(key);
    if (index === -1) throw new GossipCryptoError('ERR_GOSSIP_KEY_NOT_INSTALLED', 'Requested key is not in the keyring');
    const [chosen] = this.keys.splice(index, 1);
    if (chosen !== undefined) this.keys.unshift(chosen);
  }

  /** Drops a secondary key; unknown keys are a no-op. Throws ERR_GOSSIP_KEY_PRIMARY for the primary. */
  removeKey(key: Uint8Array): void {
    const primary = this.keys[0];
    if (primary !== undefined && equalBytes(primary, key)) throw new GossipCryptoError('ERR_GOSSIP_KEY_PRIMARY', 'Removing the primary key is not allowed');
    const index = this.indexOf(key);
    if (index !== -1) this.keys.splice(index, 1);
  }

  /** All keys, primary first (copies). */
  getKeys(): Uint8Array[] {
    return this.keys.map((key) => key.slice());
  }

  /** The primary key (a copy), or null when encryption is off. */
  getPrimaryKey(): Uint8Array | null {
    const primary = this.keys[0];
    return primary === undefined ? null : primary.slice();
  }

  /** Keys as base64, primary first: what serf's list-keys answers and Consul persists. */
  listKeys(): string[] {
    return this.keys.map(formatGossipKey);
  }

  private indexOf(key: Uint8Array): number {
    return this.keys.findIndex((installed) => equalBytes(installed, key));
  }
}

/**
 * Encrypts `plaintext` with `key` into a memberlist blob. `aad` is the additional authenticated
 * data (null for none). The nonce is `randomBytes(12)`.
 */
export function encryptPayload(version: EncryptionVersion, key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array | null, randomBytes: RandomBytes): Uint8Array {
  validateKey(key);
  const nonce = randomBytes(ENCRYPTION_NONCE_BYTES);
  if (nonce.length !== ENCRYPTION_NONCE_BYTES) throw new GossipCryptoError('ERR_GOSSIP_DECRYPT_SHORT', `randomBytes returned ${nonce.length} bytes, not ${ENCRYPTION_NONCE_BYTES}`);
  const source = version === 0 ? pkcs7Pad(plaintext) : plaintext;
  const cipher = createCipheriv(cipherName(key), key, nonce, { authTagLength: ENCRYPTION_TAG_BYTES });
  if (aad !== null) cipher.setAAD(aad);
  const body = cipher.update(source);
  const rest = cipher.final();
  const tag = cipher.getAuthTag();
  const blob = new Uint8Array(ENCRYPTION_VERSION_BYTES + ENCRYPTION_NONCE_BYTES + body.length + rest.length + tag.length);
  blob[0] = version;
  blob.set(nonce, 1);
  blob.set(body, 1 + ENCRYPTION_NONCE_BYTES);
  blob.set(rest, 1 + ENCRYPTION_NONCE_BYTES + body.length);
  blob.set(tag, blob.length - ENCRYPTION_TAG_BYTES);
  return blob;
}

/**
 * Opens a memberlist blob with the first of `keys` that authenticates it (memberlist
 * decryptPayload). Throws GossipCryptoError: empty blob, unknown version, shorter than an empty
 * message of its version, no key fits, or (version 0) bad padding.
 */
export function decryptPayload(keys: readonly Uint8Array[], blob: Uint8Array, aad: Uint8Array | null): Uint8Array {
  if (blob.length === 0) throw new GossipCryptoError('ERR_GOSSIP_DECRYPT_EMPTY', 'Cannot decrypt empty payload');
  const version = blob[0] ?? 0;
  if (version > ENCRYPTION_VERSION_MAX) throw new GossipCryptoError('ERR_GOSSIP_DECRYPT_VERSION', `Unsupported encryption version ${version}`);
  if (blob.length < encryptedLength(version as EncryptionVersion, 0)) throw new GossipCryptoError('ERR_GOSSIP_DECRYPT_SHORT', `Payload is too small to decrypt: ${blob.length}`);
  const nonce = blob.subarray(ENCRYPTION_VERSION_BYTES, ENCRYPTION_VERSION_BYTES + ENCRYPTION_NONCE_BYTES);
  const sealed = blob.subarray(ENCRYPTION_VERSION_BYTES + ENCRYPTION_NONCE_BYTES, blob.length - ENCRYPTION_TAG_BYTES);
  const tag = blob.subarray(blob.length - ENCRYPTION_TAG_BYTES);
  for (const key of keys) {
    const plain = openWithKey(key, nonce, sealed, tag, aad);
    if (plain === null) continue;
    return version === 0 ? pkcs7Unpad(plain) : plain;
  }
  throw new GossipCryptoError('ERR_GOSSIP_DECRYPT_FAILED', 'No installed keys could decrypt the message');
}

// ---------------------------------------------------------------------------------------------
// Private helpers

const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_DECODE: Uint8Array = (() => {
  const table = new Uint8Array(128).fill(0xff);
  for (let i = 0; i < BASE64_ALPHABET.length; i++) table[BASE64_ALPHABET.charCodeAt(i)] = i;
  return table;
})();

function base64Error(offset: number): GossipCryptoError {
  return new GossipCryptoError('ERR_GOSSIP_KEY_BASE64', `illegal base64 data at input byte ${offset}`);
}

function cipherName(key: Uint8Array): CipherGCMTypes {
  if (key.length === 16) return 'aes-128-gcm';
  if (key.length === 24) return 'aes-192-gcm';
  return 'aes-256-gcm';
}

/** Opens with one key; null when the key is malformed or does not authenticate the blob. */
function openWithKey(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, tag: Uint8Array, aad: Uint8Array | null): Uint8Array | null {
  if (!GOSSIP_KEY_SIZES.includes(key.length)) return null;
  const decipher = createDecipheriv(cipherName(key), key, nonce, { authTagLength: ENCRYPTION_TAG_BYTES });
  decipher.setAuthTag(tag);
  if (aad !== null) decipher.setAAD(aad);
  const body = decipher.update(sealed);
  try {
    const rest = decipher.final();
    return rest.length === 0 ? new Uint8Array(body) : new Uint8Array(Buffer.concat([body, rest]));
  } catch (error) {
    // node:crypto reports a failed GCM authentication by throwing from final(): wrong key or tampering.
    if (error instanceof Error) return null;
    throw error;
  }
}

function pkcs7Pad(plaintext: Uint8Array): Uint8Array {
  const padBytes = ENCRYPTION_BLOCK_BYTES - (plaintext.length % ENCRYPTION_BLOCK_BYTES);
  const padded = new Uint8Array(plaintext.length + padBytes);
  padded.set(plaintext);
  padded.fill(padBytes, plaintext.length);
  return padded;
}

/** Strips PKCS#7 padding. memberlist trusts the last byte blindly; we check it lies in 1..16. */
function pkcs7Unpad(plain: Uint8Array): Uint8Array {
  const padBytes = plain[plain.length - 1] ?? 0;
  if (padBytes < 1 || padBytes > ENCRYPTION_BLOCK_BYTES || padBytes > plain.length) {
    throw new GossipCryptoError('ERR_GOSSIP_DECRYPT_PADDING', `bad PKCS#7 padding byte ${padBytes} on ${plain.length} bytes`);
  }
  return plain.subarray(0, plain.length - padBytes);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
