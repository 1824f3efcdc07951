/** Types of the kinesalite devDependency (it ships none): an in-memory Kinesis implementation. */
declare module 'kinesalite' {
  import type { Server } from 'node:http';
  interface KinesaliteOptions {
    createStreamMs?: number;
    deleteStreamMs?: number;
    updateStreamMs?: number;
    shardLimit?: number;
    /** A leveldown folder; absent: memdown (in memory). */
    path?: string;
    ssl?: boolean;
  }
  export default function kinesalite(options?: KinesaliteOptions): Server;
}
