/** The audit log: operator actions, newest first. */
import type { AuditEntry as AuditEntryInfo } from '../../engine/audit.ts';
import { builder } from '../builder.ts';

const AuditEntry = builder.objectRef<AuditEntryInfo>('AuditEntry').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    at: t.expose('at', { type: 'DateTime' }),
    actor: t.exposeString('actor'),
    action: t.exposeString('action'),
    target: t.exposeString('target'),
    details: t.expose('details', { type: 'JSON', nullable: true }),
  }),
});

builder.queryFields((t) => ({
  auditLog: t.field({ type: [AuditEntry], args: { first: t.arg.int({ defaultValue: 100 }) }, resolve: (_root, args, ctx) => ctx.engine.audit.list(args.first ?? 100) }),
}));
