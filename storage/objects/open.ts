/** Opens the object store a configuration names. */
import * as path from 'node:path';
import type { Clock } from '../../runtime/clock';
import type { ObjectStoreConfig } from '../../config/schema';
import type { ObjectStore } from './object-store';
import { LocalObjectStore } from './local/local-object-store';
import { S3ObjectStore } from './s3/s3-object-store';

export async function openObjectStore(cfg: ObjectStoreConfig, clock: Clock): Promise<ObjectStore> {
  switch (cfg.kind) {
    case 'local':
      return LocalObjectStore.open({ dir: path.resolve(cfg.local.dir) });
    case 's3':
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
