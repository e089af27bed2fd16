/**
 * Opens the object store a configuration names. Each implementation is loaded only when it is the
 * one configured (the S3 one pulls in the minio client, a few hundred milliseconds to load): a
 * process, or a flush thread, on a local store never loads it.
 */
import * as path from 'node:path';
import type { Clock } from '../../runtime/clock';
import type { ObjectStoreConfig } from '../../config/schema';
import type { ObjectStore } from './object-store';

export async function openObjectStore(cfg: ObjectStoreConfig, clock: Clock): Promise<ObjectStore> {
  switch (cfg.kind) {
    case 'local': {
      const { LocalObjectStore } = await import('./local/local-object-store');
      return LocalObjectStore.open({ dir: path.resolve(cfg.local.dir) });
    }
    case 's3': {
      const { S3ObjectStore } = await import('./s3/s3-object-store');
      return S3ObjectStore.open({
        endpoint: `${cfg.s3.useSSL ? 'https' : 'http'}://${cfg.s3.endPoint}:${cfg.s3.port}`,
        accessKey: cfg.s3.accessKey,
        secretKey: cfg.s3.secretKey,
        region: cfg.s3.region,
        bucket: cfg.s3.bucket,
        clock,
      });
    }
  }
}
