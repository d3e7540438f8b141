// Socket helpers shared by the TCP protocols (the Raft transport and the server RPC port).

import type { Socket } from 'node:net';

/** Sockets corked by writeCoalesced and not yet uncorked. */
const corked = new Set<Socket>();

/**
 * Writes `bytes`, coalescing every write made to this socket in the same turn of the event loop
 * into one writev: the socket is corked on the first write and uncorked on the next tick. Raft
 * and RPC traffic is many small frames in bursts (a Ready's AppendEntries, a batch of committed
 * writes' replies); one syscall per frame was the largest cost on a loaded leader. Returns what
 * socket.write returns (false: buffered past the high-water mark, wait for 'drain').
 */
export function writeCoalesced(socket: Socket, bytes: Uint8Array): boolean {
  if (socket.writableCorked === 0) {
    socket.cork();
    corked.add(socket);
    process.nextTick(uncork, socket);
  }
  return socket.write(bytes);
}

/**
 * Sends everything writeCoalesced is holding, now. For a caller about to block the event loop
 * (the Raft node's inline fsync) after writing messages that must not wait for it.
 */
export function flushCoalesced(): void {
  for (const socket of corked) uncork(socket);
}

function uncork(socket: Socket): void {
  corked.delete(socket);
  while (socket.writableCorked > 0) socket.uncork();
}
