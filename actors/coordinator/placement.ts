/**
 * Placement policy (pure): where each pchannel should live. Channels ASSIGNED (or being assigned)
 * to a live node stay; every other one goes to the live node holding the fewest, ties by node id.
 * `avoid` lists nodes a pchannel should not go back to (it was just given up there) when another
 * node is available.
 */
import type { PChannelMeta } from './channel-meta';

export function loadByNode(channels: readonly PChannelMeta[], nodes: readonly string[]): Map<string, number> {
  const load = new Map<string, number>(nodes.map((n) => [n, 0]));
  for (const c of channels) {
    if (c.node !== undefined && (c.state === 'ASSIGNED' || c.state === 'ASSIGNING') && load.has(c.node)) load.set(c.node, load.get(c.node)! + 1);
  }
  return load;
}

export function pickNode(load: ReadonlyMap<string, number>, avoid: ReadonlySet<string> = new Set()): string | undefined {
  let best: string | undefined;
  let bestLoad = Infinity;
  let fallback: string | undefined;
  let fallbackLoad = Infinity;
  for (const [node, n] of [...load.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (n < fallbackLoad) {
      fallback = node;
      fallbackLoad = n;
    }
    if (!avoid.has(node) && n < bestLoad) {
      best = node;
      bestLoad = n;
    }
  }
  return best ?? fallback;
}

/**
 * pchannel → node for every channel that needs a (new) owner; then, when `rebalance` is on and the
 * live nodes' loads differ by more than one, one move from the most to the least loaded node (a
 * node that joins gets its share one pchannel at a time).
 */
export function plan(
  channels: readonly PChannelMeta[],
  liveNodes: readonly string[],
  avoid: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
  rebalance = false,
  /** pchannels that moved recently (a transfer asked for them, or a rebalance): not moved again yet. */
  settling: ReadonlySet<string> = new Set(),
): Map<string, string> {
  const live = new Set(liveNodes);
  const load = loadByNode(channels, liveNodes);
  const moves = new Map<string, string>();
  for (const c of channels) {
    const placed = c.node !== undefined && live.has(c.node) && (c.state === 'ASSIGNED' || c.state === 'ASSIGNING');
    if (placed) continue;
    const node = pickNode(load, avoid.get(c.name));
    if (node === undefined) continue;
    moves.set(c.name, node);
    load.set(node, (load.get(node) ?? 0) + 1);
  }
  if (rebalance && moves.size === 0 && load.size > 1) {
    const sorted = [...load.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
    const [least, min] = sorted[0]!;
    const [most, max] = sorted[sorted.length - 1]!;
    if (max - min > 1) {
      const c = channels.filter((x) => x.node === most && x.state === 'ASSIGNED' && !settling.has(x.name)).sort((a, b) => (a.name < b.name ? -1 : 1))[0];
      if (c && !avoid.get(c.name)?.has(least)) moves.set(c.name, least);
    }
  }
  return moves;
}
