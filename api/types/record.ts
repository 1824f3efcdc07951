/** StreamRecord and its connection, the write mutations, and the records live tail. */
import type { RecordPage, StoredRecord } from '../../engine/records/readRecords.ts';
import type { PutResult, PutResultEntry } from '../../engine/records/putRecords.ts';
import type { ItemChange } from '../../engine/dynamodb/writeItems.ts';
import { tailRecords } from '../../engine/records/tailRecords.ts';
import { builder } from '../builder.ts';

export const StreamRecord = builder.objectRef<StoredRecord>('StreamRecord').implement({
  fields: (t) => ({
    eventID: t.exposeString('eventID'),
    shardId: t.exposeString('shardId'),
    sequenceNumber: t.exposeString('sequenceNumber'),
    partitionKey: t.exposeString('partitionKey'),
    data: t.exposeString('data', { description: 'base64; for DYNAMODB the JSON of the `dynamodb` object' }),
    approximateArrivalTimestamp: t.expose('approximateArrivalTimestamp', { type: 'DateTime' }),
    sizeBytes: t.exposeInt('sizeBytes'),
    eventName: t.exposeString('eventName', { nullable: true, description: 'DYNAMODB: INSERT | MODIFY | REMOVE' }),
    keys: t.expose('keys', { type: 'JSON', nullable: true }),
    newImage: t.expose('newImage', { type: 'JSON', nullable: true }),
    oldImage: t.expose('oldImage', { type: 'JSON', nullable: true }),
    origin: t.expose('origin', {
      type: 'JSON',
      nullable: true,
      description: 'Imported records: the original eventID, sequence number and arrival time of the captured event.',
    }),
  }),
});

export const PageInfo = builder.objectRef<{ hasNextPage: boolean; endCursor: string | null }>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    endCursor: t.exposeString('endCursor', { nullable: true }),
  }),
});

const RecordEdge = builder.objectRef<RecordPage['records'][number]>('RecordEdge').implement({
  fields: (t) => ({
    cursor: t.exposeString('cursor'),
    node: t.field({ type: StreamRecord, resolve: (edge) => edge.record }),
  }),
});

export const RecordConnection = builder.objectRef<RecordPage>('RecordConnection').implement({
  fields: (t) => ({
    edges: t.field({ type: [RecordEdge], resolve: (page) => page.records }),
    pageInfo: t.field({ type: PageInfo, resolve: (page) => page }),
  }),
});

const PutRecordsResultEntry = builder.objectRef<PutResultEntry>('PutRecordsResultEntry').implement({
  fields: (t) => ({
    shardId: t.exposeString('shardId', { nullable: true }),
    sequenceNumber: t.exposeString('sequenceNumber', { nullable: true }),
    errorCode: t.exposeString('errorCode', { nullable: true }),
    errorMessage: t.exposeString('errorMessage', { nullable: true }),
  }),
});

const PutRecordsResult = builder.objectRef<PutResult>('PutRecordsResult').implement({
  fields: (t) => ({
    failedRecordCount: t.exposeInt('failedRecordCount'),
    records: t.field({ type: [PutRecordsResultEntry], resolve: (r) => r.records }),
  }),
});

const PutRecordInput = builder.inputType('PutRecordInput', {
  fields: (t) => ({
    partitionKey: t.string({ required: true }),
    data: t.string({ required: true }),
    explicitHashKey: t.string(),
  }),
});

const ItemChangeInput = builder.inputType('ItemChangeInput', {
  description: 'DynamoDB AttributeValue JSON',
  fields: (t) => ({
    keys: t.field({ type: 'JSON', required: true }),
    oldImage: t.field({ type: 'JSON' }),
    newImage: t.field({ type: 'JSON' }),
  }),
});

builder.mutationFields((t) => ({
  putRecords: t.field({
    type: PutRecordsResult,
    args: {
      streamName: t.arg.string({ required: true }),
      records: t.arg({ type: [PutRecordInput], required: true }),
    },
    resolve: (_root, args, ctx) => ctx.engine.putRecords(args.streamName, args.records),
  }),
  writeItems: t.field({
    type: PutRecordsResult,
    args: {
      streamName: t.arg.string({ required: true }),
      changes: t.arg({ type: [ItemChangeInput], required: true }),
    },
    // keys is JSON! (never absent); the JSON scalar's type is just wider.
    resolve: (_root, args, ctx) => ctx.engine.writeItems(args.streamName, args.changes as ItemChange[]),
  }),
  importRecords: t.field({
    type: PutRecordsResult,
    description: 'a captured Lambda event {"Records":[...]}',
    args: { streamName: t.arg.string({ required: true }), event: t.arg({ type: 'JSON', required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.importRecords(args.streamName, args.event),
  }),
}));

builder.subscriptionFields((t) => ({
  records: t.field({
    type: StreamRecord,
    description: 'Records committed after the subscription starts, per shard in sequence order.',
    args: { streamName: t.arg.string({ required: true }), shardId: t.arg.string() },
    subscribe: (_root, args, ctx) =>
      tailRecords(ctx.engine.catalog, ctx.engine.reader, ctx.engine.events, ctx.engine.feedCounts, args.streamName, args.shardId),
    resolve: (record) => record,
  }),
}));
