// Socket helpers shared by the TCP protocols (the Raft transport and the server RPC port).

import type { Socket } from 'node:net';

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
    process.nextTick(uncork, socket);
  }
  return socket.write(bytes);
}

function uncork(socket: Socket): void {
  while (socket.writableCorked > 0) socket.uncork();
}
