import { ErrorCode } from '../../runtime/errors';
import {
  collectionPrefix,
  parseSegmentPath,
  partitionPrefix,
  segmentFilePath,
  segmentFilePaths,
  segmentPrefix,
} from '../../storage/segments/layout';

const ref = { collectionId: 1, partitionId: 20, segmentId: 300 };

describe('segment layout', () => {
  it('builds {root}/{collection}/{partition}/{segment}/{file}', () => {
    expect(segmentFilePaths('segments', ref)).toEqual({
      inserts: 'segments/1/20/300/inserts.arrow',
      deletes: 'segments/1/20/300/deletes.arrow',
      manifest: 'segments/1/20/300/manifest.json',
    });
    expect(segmentFilePath('', ref, 'manifest')).toBe('1/20/300/manifest.json');
    expect(segmentFilePath('a/b', ref, 'inserts')).toBe('a/b/1/20/300/inserts.arrow');
    expect(segmentPrefix('r', ref)).toBe('r/1/20/300/');
    expect(partitionPrefix('r', 1, 20)).toBe('r/1/20/');
    expect(collectionPrefix('r', 1)).toBe('r/1/');
  });

  it('ends prefixes with "/" so that an id never matches a longer id', () => {
    const other = segmentFilePath('r', { collectionId: 10, partitionId: 20, segmentId: 300 }, 'manifest');
    expect(other.startsWith(collectionPrefix('r', 1))).toBe(false);
    expect(segmentFilePath('r', { ...ref, segmentId: 3000 }, 'manifest').startsWith(segmentPrefix('r', ref))).toBe(false);
  });

  it('parses its own paths back, and nothing else', () => {
    for (const file of ['inserts', 'deletes', 'manifest'] as const) {
      expect(parseSegmentPath('r', segmentFilePath('r', ref, file))).toEqual({ ref, file });
    }
    expect(parseSegmentPath('', segmentFilePath('', { collectionId: 0, partitionId: 0, segmentId: 0 }, 'manifest'))).toEqual({
      ref: { collectionId: 0, partitionId: 0, segmentId: 0 },
      file: 'manifest',
    });
    for (const key of ['r/1/20/300/other.bin', 'r/1/20/manifest.json', 'x/1/20/300/manifest.json', 'r/01/20/300/manifest.json', 'r/1/20/300/sub/manifest.json', 'r/-1/2/3/manifest.json']) {
      expect({ key, parsed: parseSegmentPath('r', key) }).toEqual({ key, parsed: undefined });
    }
  });

  it('refuses bad ids and roots with INVALID_ARGUMENT', () => {
    for (const bad of [{ ...ref, collectionId: -1 }, { ...ref, partitionId: 1.5 }, { ...ref, segmentId: Number.NaN }, { ...ref, segmentId: 2 ** 53 }]) {
      expect(() => segmentPrefix('r', bad)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    }
    for (const root of ['/r', 'r/', 'a//b', '..', 'a/./b']) {
      expect(() => segmentPrefix(root, ref)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT, details: expect.objectContaining({ field: 'root' }) }));
    }
  });
});
