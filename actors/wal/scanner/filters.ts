/**
 * Deliver filters of a subscription: timetick > / ≥ and message types. System messages always
 * pass a type filter; timetick filters apply to everything delivered (a Txn has its commit timetick).
 */
import { ErrorCode, StreamingError } from '../../../runtime/errors';
import type { Timetick } from '../../../runtime/message/timetick';
import { MESSAGE_TYPES, SYSTEM_TYPES, type LogMessage, type MessageType } from '../../../runtime/message/types';

export interface DeliverFilters {
  timetickGt?: Timetick;
  timetickGte?: Timetick;
  /** Non-system types to deliver; system types always pass. */
  types?: MessageType[];
}

export type MessagePredicate = (msg: LogMessage) => boolean;

export function compileFilters(f: DeliverFilters | undefined): MessagePredicate {
  if (!f) return () => true;
  let types: Set<MessageType> | undefined;
  if (f.types) {
    for (const t of f.types) {
      if (!MESSAGE_TYPES.includes(t)) throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `unknown message type ${String(t)} in filter`, { details: { field: 'filters.types' } });
      if (SYSTEM_TYPES.has(t)) throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `system type ${t} cannot be filtered (it always passes)`, { details: { field: 'filters.types' } });
    }
    types = new Set(f.types);
  }
  const gt = f.timetickGt;
  const gte = f.timetickGte;
  return (msg) => {
    if (gt !== undefined && !(msg.timetick > gt)) return false;
    if (gte !== undefined && !(msg.timetick >= gte)) return false;
    if (types && !SYSTEM_TYPES.has(msg.type) && !types.has(msg.type)) return false;
    return true;
  };
}
