/**
 * The pchannel state machine of the coordinator (pure):
 *   UNINITIALIZED | ASSIGNED | UNAVAILABLE --tryAssign(node)--> ASSIGNING(term+1) --assignDone--> ASSIGNED
 *   ASSIGNED(term) --markUnavailable(term)--> UNAVAILABLE
 * The term bump on tryAssign is the fence: it is persisted before any node is told anything.
 * Operations naming an older term are ignored (they return the meta unchanged).
 */
export type PChannelState = 'UNINITIALIZED' | 'ASSIGNING' | 'ASSIGNED' | 'UNAVAILABLE';

export interface PChannelMeta {
  readonly name: string;
  readonly term: number;
  readonly node: string | undefined;
  readonly state: PChannelState;
  /** Former holders not yet told to let go (cleared once the new owner is ASSIGNED). */
  readonly histories: readonly { term: number; node: string }[];
}

export function newPChannel(name: string): PChannelMeta {
  return { name, term: 0, node: undefined, state: 'UNINITIALIZED', histories: [] };
}

/** Starts assigning to `node` at term+1; unchanged when already ASSIGNED to that node. */
export function tryAssign(meta: PChannelMeta, node: string): PChannelMeta {
  if (meta.state === 'ASSIGNED' && meta.node === node) return meta;
  const histories = meta.node !== undefined && meta.state !== 'UNINITIALIZED' ? [...meta.histories, { term: meta.term, node: meta.node }] : [...meta.histories];
  return { name: meta.name, term: meta.term + 1, node, state: 'ASSIGNING', histories };
}

/** ASSIGNING at `term` → ASSIGNED. */
export function assignDone(meta: PChannelMeta, term: number): PChannelMeta {
  if (meta.state !== 'ASSIGNING' || meta.term !== term) return meta;
  return { ...meta, state: 'ASSIGNED', histories: [] };
}

/** ASSIGNED (or ASSIGNING) at `term` → UNAVAILABLE; anything else is a stale report. */
export function markUnavailable(meta: PChannelMeta, term: number): PChannelMeta {
  if ((meta.state !== 'ASSIGNED' && meta.state !== 'ASSIGNING') || meta.term !== term) return meta;
  const histories = meta.node !== undefined ? [...meta.histories, { term: meta.term, node: meta.node }] : [...meta.histories];
  return { ...meta, state: 'UNAVAILABLE', histories };
}

/** Every node that may still hold the pchannel and must be told to remove it. */
export function formerHolders(meta: PChannelMeta): { term: number; node: string }[] {
  return meta.histories.filter((h) => h.node !== meta.node || h.term !== meta.term);
}
