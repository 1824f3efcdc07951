/** Alert rules, alerts, and the alerts subscription. */
import { watchAlerts } from '../../engine/alerts/alertFeed.ts';
import type { AlertInfo, AlertRuleInfo } from '../../engine/alerts/alertRules.ts';
import { cancellable } from '../../engine/observability/cancellable.ts';
import { builder } from '../builder.ts';
import { AlertMetric, AlertState } from './enums.ts';

const AlertRule = builder.objectRef<AlertRuleInfo>('AlertRule').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    mappingId: t.exposeID('mappingId', { nullable: true }),
    metric: t.expose('metric', { type: AlertMetric }),
    threshold: t.exposeFloat('threshold'),
    forSeconds: t.exposeInt('forSeconds'),
  }),
});

const Alert = builder.objectRef<AlertInfo>('Alert').implement({
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
  alertRules: t.field({ type: [AlertRule], resolve: (_root, _args, ctx) => ctx.engine.alerts.list() }),
  alerts: t.field({ type: [Alert], args: { state: t.arg({ type: AlertState }) }, resolve: (_root, args, ctx) => ctx.engine.alerts.alerts(args.state) }),
}));

builder.mutationFields((t) => ({
  createAlertRule: t.field({
    type: AlertRule, args: { input: t.arg({ type: AlertRuleInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.engine.createAlertRule({ ...input, mappingId: input.mappingId == null ? null : String(input.mappingId) }, ctx.principal.name),
  }),
  deleteAlertRule: t.boolean({ args: { id: t.arg.id({ required: true }) }, resolve: (_root, args, ctx) => ctx.engine.deleteAlertRule(String(args.id), ctx.principal.name) }),
}));

builder.subscriptionFields((t) => ({
  alerts: t.field({
    type: Alert,
    description: 'Each FIRING and RESOLVED transition of an alert, once, from now on.',
    subscribe: (_root, _args, ctx) => cancellable((signal) => watchAlerts(ctx.engine, signal)),
    resolve: (value) => value,
  }),
}));
