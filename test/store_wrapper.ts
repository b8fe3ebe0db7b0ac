/**
 * A Store that passes every call to another one: tests subclass it and override the calls
 * they want to watch, pause or fail.
 */
import type { ObjectInfo, RemoveOptions, SaveOptions, Store } from "../src/store/store.ts";

export class StoreWrapper implements Store {
  constructor(readonly inner: Store) {}
  get location(): string {
    return this.inner.location;
  }
  get kind(): Store["kind"] {
    return this.inner.kind;
  }
  checkExists(): Promise<void> {
    return this.inner.checkExists();
  }
  save(
    name: string,
    data: Uint8Array | ReadableStream<Uint8Array>,
    opts?: SaveOptions,
  ): Promise<void> {
    return this.inner.save(name, data, opts);
  }
  load(name: string): Promise<ReadableStream<Uint8Array>> {
    return this.inner.load(name);
  }
  stat(name: string): Promise<ObjectInfo | null> {
    return this.inner.stat(name);
  }
  list(prefix?: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  remove(names: string[], opts?: RemoveOptions): Promise<void> {
    return this.inner.remove(names, opts);
  }
  abortUploads(before: Date): Promise<number> {
    return this.inner.abortUploads?.(before) ?? Promise.resolve(0);
  }
  flush(): Promise<void> {
    return this.inner.flush?.() ?? Promise.resolve();
  }
}
