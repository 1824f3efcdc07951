/** API tokens: created by an admin (the secrets are shown once), listed, revoked. */
import type { CreatedToken, TokenView } from '../../engine/auth/apiTokens.ts';
import { builder } from '../builder.ts';

const TokenScope = builder.enumType('TokenScope', {
  description: 'read: queries, subscriptions, /metrics. produce: record writes. operate: replays, seek, redrive, enable/disable, alert rules. admin: everything, including streams, functions, mappings and tokens.',
  values: ['READ', 'PRODUCE', 'OPERATE', 'ADMIN'] as const,
});

const ApiToken = builder.objectRef<TokenView>('ApiToken').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name', { description: 'Recorded as the actor in the audit log.' }),
    scopes: t.field({ type: [TokenScope], resolve: (token) => token.scopes.map((s) => s.toUpperCase() as 'READ') }),
    accessKeyId: t.exposeString('accessKeyId', { description: 'Access key id for SigV4-signed calls to the Kinesis and DynamoDB Streams APIs.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
  }),
});

const CreatedApiToken = builder.objectRef<CreatedToken>('CreatedApiToken').implement({
  description: 'A new token. The secrets are shown only here, once; shardline keeps a hash of the bearer token.',
  fields: (t) => ({
    token: t.field({ type: ApiToken, resolve: (created) => created }),
    bearerToken: t.string({ description: 'Send as "Authorization: Bearer <bearerToken>".', resolve: (created) => created.token }),
    secretAccessKey: t.exposeString('secretAccessKey', { description: 'With token.accessKeyId: the AWS credentials for SigV4-signed AWS API calls.' }),
  }),
});

builder.queryFields((t) => ({
  apiTokens: t.field({ type: [ApiToken], description: 'Every token, revoked ones included (admin scope).', resolve: (_root, _args, ctx) => ctx.engine.tokens.list() }),
}));

builder.mutationFields((t) => ({
  createApiToken: t.field({
    type: CreatedApiToken,
    args: { name: t.arg.string({ required: true }), scopes: t.arg({ type: [TokenScope], required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.tokens.create({ name: args.name, scopes: args.scopes.map((s) => s.toLowerCase()) }, ctx.principal.name),
  }),
  revokeApiToken: t.field({
    type: ApiToken,
    description: 'Revokes a token by id or name; its requests fail and its subscriptions close within a second.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.tokens.revoke(String(args.id), ctx.principal.name),
  }),
}));
