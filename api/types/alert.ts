/** Alert rules and alerts. Contract types only for now: resolvers raise NOT_IMPLEMENTED. */
import { builder } from '../builder.ts';
import { AlertMetric, AlertState } from './enums.ts';
import { type Unbuilt, notBuilt } from './notBuilt.ts';

const AlertRule = builder.objectRef<Unbuilt>('AlertRule').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    mappingId: t.exposeID('mappingId', { nullable: true }),
    metric: t.expose('metric', { type: AlertMetric }),
    threshold: t.exposeFloat('threshold'),
    forSeconds: t.exposeInt('forSeconds'),
  }),
});

const Alert = builder.objectRef<Unbuilt>('Alert').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    rule: t.expose('rule', { type: AlertRule }),
    state: t.expose('state', { type: AlertState }),
    value: t.exposeFloat('value'),
    startedAt: t.expose('startedAt', { type: 'DateTime' }),
    resolvedAt: t.expose('resolvedAt', { type: 'DateTime', nullable: true }),
  }),
});

const AlertRuleInput = builder.inputType('AlertRuleInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    mappingId: t.id(),
    metric: t.field({ type: AlertMetric, required: true }),
    threshold: t.float({ required: true }),
    forSeconds: t.int({ defaultValue: 60 }),
  }),
});

builder.queryFields((t) => ({
  alertRules: t.field({ type: [AlertRule], resolve: notBuilt('alertRules') }),
  alerts: t.field({ type: [Alert], args: { state: t.arg({ type: AlertState }) }, resolve: notBuilt('alerts') }),
}));

builder.mutationFields((t) => ({
  createAlertRule: t.field({ type: AlertRule, args: { input: t.arg({ type: AlertRuleInput, required: true }) }, resolve: notBuilt('createAlertRule') }),
  deleteAlertRule: t.boolean({ args: { id: t.arg.id({ required: true }) }, resolve: notBuilt('deleteAlertRule') }),
}));

builder.subscriptionFields((t) => ({
  alerts: t.field({ type: Alert, subscribe: notBuilt('Subscription.alerts'), resolve: (value: Unbuilt) => value }),
}));
