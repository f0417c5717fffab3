/**
 * #18 telemetry: one observer of every request core's storage clients send (each attempt, after signing),
 * so the function app can count them and keep a sample as dependency telemetry. Core stays free of any
 * telemetry SDK: it hands over the method, host, path (never the query: the SAS), status and duration.
 */

/** One storage request as the observer sees it. */
export interface StorageRequestRecord {
  method: string;
  /** `https:` (or `http:` for an emulator). */
  protocol: string;
  /** The endpoint's host (and port), e.g. `acct.blob.core.windows.net`. */
  host: string;
  /** The URL path without its query. */
  path: string;
  /** The response's status; absent when no response came (a network error, a refused endpoint). */
  status?: number;
  startedAt: Date;
  durationMs: number;
}

export type StorageRequestObserver = (record: StorageRequestRecord) => void;

let observer: StorageRequestObserver | undefined;

/** Sets (or, with undefined, removes) the process's one observer of storage requests. */
export function observeStorageRequests(next: StorageRequestObserver | undefined): void {
  observer = next;
}

interface PolicyRequest {
  url: string;
  method: string;
}

/** The shape of a @azure/core-rest-pipeline PipelinePolicy (as endpoints.ts's guard). */
export interface RequestObserverPolicy {
  name: string;
  sendRequest<R>(request: PolicyRequest, next: (request: PolicyRequest) => Promise<R>): Promise<R>;
}

/** The pipeline policy that reports each request to the observer (installed on every guarded client). */
export function requestObserverPolicy(): RequestObserverPolicy {
  return {
    name: 'pagewiseRequestObserver',
    async sendRequest(request, next) {
      if (!observer) return next(request);
      const startedAt = new Date();
      let status: number | undefined;
      try {
        const response = await next(request);
        const got = (response as { status?: unknown }).status;
        if (typeof got === 'number') status = got;
        return response;
      } catch (err) {
        const code = (err as { statusCode?: unknown }).statusCode;
        if (typeof code === 'number') status = code;
        throw err;
      } finally {
        report(request, startedAt, status);
      }
    },
  };
}

function report(request: PolicyRequest, startedAt: Date, status: number | undefined): void {
  const current = observer;
  if (!current) return;
  try {
    const url = new URL(request.url);
    current({ method: request.method, protocol: url.protocol, host: url.host, path: url.pathname, ...(status !== undefined ? { status } : {}), startedAt, durationMs: Date.now() - startedAt.getTime() });
  } catch {
    // an observer's failure never fails the request
  }
}
