/** The served GraphQL schema: every type file registers itself on the builder. */
import { builder } from './builder.ts';
import './types/scalars.ts';
import './types/enums.ts';
import './types/position.ts';
import './types/record.ts';
import './types/stream.ts';
import './types/shardStats.ts';
import './types/delivery.ts';
import './types/replay.ts';
import './types/alert.ts';
import './types/audit.ts';
import './types/capture.ts';

export const schema = builder.toSchema({ sortSchema: false });
