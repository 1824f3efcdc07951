/** The contract's enums. */
import { builder } from '../builder.ts';

export const StreamKind = builder.enumType('StreamKind', { values: ['KINESIS', 'DYNAMODB'] as const });
export const StreamStatus = builder.enumType('StreamStatus', { values: ['CREATING', 'ACTIVE', 'UPDATING', 'DELETING'] as const });
export const StreamViewType = builder.enumType('StreamViewType', {
  values: ['KEYS_ONLY', 'NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES'] as const,
});
export const ShardFilter = builder.enumType('ShardFilter', { values: ['OPEN', 'CLOSED', 'ALL'] as const });
export const PositionType = builder.enumType('PositionType', {
  values: ['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'] as const,
});
export const MappingState = builder.enumType('MappingState', { values: ['ENABLED', 'DISABLED'] as const });
export const FunctionResponseType = builder.enumType('FunctionResponseType', { values: ['ReportBatchItemFailures'] as const });
export const LeaseState = builder.enumType('LeaseState', {
  values: ['WAITING_FOR_PARENT', 'IDLE', 'PROCESSING', 'RETRYING', 'SHARD_END'] as const,
});
export const InvocationOutcome = builder.enumType('InvocationOutcome', {
  values: ['OK', 'PARTIAL_FAILURE', 'FUNCTION_ERROR', 'TIMEOUT', 'THROTTLED'] as const,
});
export const FailureKind = builder.enumType('FailureKind', {
  values: ['FUNCTION_ERROR', 'TIMEOUT', 'PARTIAL_FAILURE', 'BISECTED', 'RETRIES_EXHAUSTED', 'RECORD_EXPIRED'] as const,
});
export const ReplayState = builder.enumType('ReplayState', {
  values: ['PENDING', 'RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const,
});
export const AlertMetric = builder.enumType('AlertMetric', {
  // TIME_TO_DATA_LOSS_SECONDS fires when the value falls BELOW the threshold; the others above.
  values: ['ITERATOR_AGE_MS', 'RECORDS_BEHIND', 'ERROR_RATE', 'DISCARDED_RECORDS', 'TIME_TO_DATA_LOSS_SECONDS'] as const,
});
export const AlertState = builder.enumType('AlertState', { values: ['FIRING', 'RESOLVED'] as const });
