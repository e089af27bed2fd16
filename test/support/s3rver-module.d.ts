// Minimal typings of the parts of s3rver (devDependency, no bundled types) that test/support/s3rver.ts uses.
declare module 's3rver' {
  import type { Server } from 'node:http';
  import type { AddressInfo } from 'node:net';

  class S3rver {
    constructor(options?: S3rver.Options);
    /** Koa's middleware list; composed when the server starts listening. */
    middleware: S3rver.Middleware[];
    httpServer?: Server;
    store: S3rver.FilesystemStore;
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }

  namespace S3rver {
    interface Options {
      address?: string;
      port?: number;
      silent?: boolean;
      directory?: string;
      resetOnClose?: boolean;
      vhostBuckets?: boolean;
      allowMismatchedSignatures?: boolean;
      configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
    }

    interface StoredObject {
      key: string;
      size: number;
      lastModifiedDate: Date;
      metadata: Record<string, string>;
    }

    /** An object as the router hands it to the store. */
    interface IncomingObject {
      bucket: string;
      key: string;
      content: Buffer | NodeJS.ReadableStream;
      metadata: Record<string, string>;
    }

    /** The filesystem store, as far as the fixture replaces or calls it. */
    interface FilesystemStore {
      getResourcePath(bucket: string, key: string, resource: string): string;
      putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void>;
      putObject(object: IncomingObject): Promise<{ size: number; md5: string }>;
    }

    /** The Koa context, as far as the fixture's middleware needs it. */
    interface Context {
      method: string;
      path: string;
      query: Record<string, string | string[] | undefined>;
      headers: Record<string, string | string[] | undefined>;
      params: Record<string, string>;
      body: unknown;
      req: { socket: { destroy(): void } };
      store: {
        existsObject(bucket: string, key: string): Promise<boolean>;
        getBucket(bucket: string): Promise<unknown>;
        listObjects(bucket: string, options: { prefix?: string; startAfter?: string; maxKeys?: number }): Promise<{ objects: StoredObject[] }>;
      };
    }

    type Middleware = (ctx: Context, next: () => Promise<void>) => Promise<void>;
  }

  export = S3rver;
}

declare module 's3rver/lib/middleware/authentication' {
  import type S3rver from 's3rver';
  function authentication(): S3rver.Middleware;
  export = authentication;
}

declare module 's3rver/lib/models/error' {
  class S3Error extends Error {
    constructor(code: string, message: string, detail?: Record<string, string>);
    readonly code: string;
    readonly status: number;
  }
  export = S3Error;
}
