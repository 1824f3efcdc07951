/** The audit log. Contract type only for now: the query raises NOT_IMPLEMENTED. */
import { builder } from '../builder.ts';
import { type Unbuilt, notBuilt } from './notBuilt.ts';

const AuditEntry = builder.objectRef<Unbuilt>('AuditEntry').implement({
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
  auditLog: t.field({ type: [AuditEntry], args: { first: t.arg.int({ defaultValue: 100 }) }, resolve: notBuilt('auditLog') }),
}));
