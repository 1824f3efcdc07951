/** PositionInput: where a read or a replay window starts. */
import { builder } from '../builder.ts';
import { PositionType } from './enums.ts';

export const PositionInput = builder.inputType('PositionInput', {
  fields: (t) => ({
    type: t.field({ type: PositionType, required: true }),
    sequenceNumber: t.string({ description: 'AT_/AFTER_SEQUENCE_NUMBER' }),
    timestamp: t.field({ type: 'DateTime', description: 'AT_TIMESTAMP' }),
  }),
});
