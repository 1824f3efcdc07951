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
import './types/token.ts';

import { requireScopes } from './auth/fieldScopes.ts';

/** Every root field checks the request's scopes (api/auth/fieldScopes.ts). */
export const schema = requireScopes(builder.toSchema({ sortSchema: false }));
