import { assignDone, formerHolders, markUnavailable, newPChannel, tryAssign } from '../../actors/coordinator/channel-meta';
import { plan, pickNode, loadByNode } from '../../actors/coordinator/placement';

describe('pchannel state machine', () => {
  test('assign bumps the term, done makes it ASSIGNED, histories remember former holders until done', () => {
    const p0 = newPChannel('p');
    const a1 = tryAssign(p0, 'n1');
    expect(a1).toMatchObject({ term: 1, node: 'n1', state: 'ASSIGNING', histories: [] });
    const d1 = assignDone(a1, 1);
    expect(d1).toMatchObject({ term: 1, node: 'n1', state: 'ASSIGNED' });
    expect(tryAssign(d1, 'n1')).toBe(d1); // already there: unchanged
    const a2 = tryAssign(d1, 'n2');
    expect(a2).toMatchObject({ term: 2, node: 'n2', state: 'ASSIGNING', histories: [{ term: 1, node: 'n1' }] });
    expect(formerHolders(a2)).toEqual([{ term: 1, node: 'n1' }]);
    // a failed assignment then another target: both former holders are kept
    const u2 = markUnavailable(a2, 2);
    expect(u2.state).toBe('UNAVAILABLE');
    const a3 = tryAssign(u2, 'n3');
    expect(a3.term).toBe(3);
    expect(formerHolders(a3)).toEqual([
      { term: 1, node: 'n1' },
      { term: 2, node: 'n2' },
      { term: 2, node: 'n2' },
    ]);
    const d3 = assignDone(a3, 3);
    expect(d3).toMatchObject({ state: 'ASSIGNED', node: 'n3', term: 3, histories: [] });
  });

  test('stale-term operations are ignored', () => {
    const d1 = assignDone(tryAssign(newPChannel('p'), 'n1'), 1);
    const a2 = tryAssign(d1, 'n2');
    expect(assignDone(a2, 1)).toBe(a2);
    expect(markUnavailable(a2, 1)).toBe(a2);
    expect(markUnavailable(assignDone(a2, 2), 1).state).toBe('ASSIGNED');
  });
});

describe('placement', () => {
  const assigned = (name: string, node: string) => assignDone(tryAssign(newPChannel(name), node), 1);

  test('places unplaced channels on the least loaded live node, keeps placed ones', () => {
    const channels = [assigned('p0', 'a'), assigned('p1', 'a'), newPChannel('p2'), newPChannel('p3'), newPChannel('p4')];
    const moves = plan(channels, ['a', 'b', 'c']);
    expect([...moves.entries()]).toEqual([
      ['p2', 'b'],
      ['p3', 'c'],
      ['p4', 'b'],
    ]);
  });

  test('channels of a dead node move; avoided nodes are skipped when another is available', () => {
    const channels = [assigned('p0', 'dead'), assigned('p1', 'a')];
    expect([...plan(channels, ['a', 'b']).entries()]).toEqual([['p0', 'b']]);
    expect([...plan([markUnavailable(assigned('p0', 'a'), 1)], ['a', 'b'], new Map([['p0', new Set(['b'])]])).entries()]).toEqual([['p0', 'a']]);
    // the only live node is avoided: it still gets it rather than nobody
    expect([...plan([markUnavailable(assigned('p0', 'a'), 1)], ['a'], new Map([['p0', new Set(['a'])]])).entries()]).toEqual([['p0', 'a']]);
  });

  test('rebalance: a node that joins gets its share, one pchannel per round', () => {
    let channels = ['p0', 'p1', 'p2', 'p3'].map((n) => assigned(n, 'a'));
    const rounds: string[] = [];
    for (let i = 0; i < 5; i++) {
      const m = plan(channels, ['a', 'b'], new Map(), true);
      if (m.size === 0) break;
      expect(m.size).toBe(1);
      const [name, node] = [...m.entries()][0]!;
      rounds.push(`${name}->${node}`);
      channels = channels.map((c) => (c.name === name ? assignDone(tryAssign(c, node), c.term + 1) : c));
    }
    expect(rounds).toEqual(['p0->b', 'p1->b']);
    expect(plan(channels, ['a', 'b'], new Map(), false).size).toBe(0);
  });

  test('no live node: nothing planned', () => {
    expect(plan([newPChannel('p0')], []).size).toBe(0);
    expect(pickNode(loadByNode([], []))).toBeUndefined();
  });

  test('fair: 8 channels over 3 nodes differ by at most one', () => {
    const moves = plan(Array.from({ length: 8 }, (_, i) => newPChannel(`p${i}`)), ['x', 'y', 'z']);
    const counts = new Map<string, number>();
    for (const n of moves.values()) counts.set(n, (counts.get(n) ?? 0) + 1);
    expect(Math.max(...counts.values()) - Math.min(...counts.values())).toBeLessThanOrEqual(1);
    expect([...counts.values()].reduce((a, b) => a + b)).toBe(8);
  });
});
