/**
 * Application Insights for the function app (docs/TELEMETRY.md). When APPLICATIONINSIGHTS_CONNECTION_STRING
 * is set (in Azure, by infra/) the `applicationinsights` v3 SDK (OpenTelemetry underneath) sends:
 * Pagewise's operation events (`Pagewise<Kind><Phase>`, operation id = the orchestration instance ID),
 * its custom metrics, and a sample of core's storage requests as dependencies — every request is
 * counted in the aggregated metric `Pagewise.StorageRequests` instead. Without the setting nothing is
 * loaded and nothing sent. Only redacted, secret-free values go into telemetry: every string attribute
 * of every item passes core's redact.
 */
import * as path from 'node:path';
import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import type { Logger } from '@opentelemetry/api-logs';
import type { LogRecordProcessor, SdkLogRecord } from '@opentelemetry/sdk-logs';
import type { Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { displayUrl, observeStorageRequests, redact } from '../core';
import { appSettings, Env } from './settings';
import type { OperationReportKind, OperationTrigger } from '../orchestrations/contracts';

// ---- settings -------------------------------------------------------------------------------------

export const CONNECTION_STRING_SETTING = 'APPLICATIONINSIGHTS_CONNECTION_STRING';
/** Percent (0–100) of storage requests kept as dependency items; every request is counted regardless. */
export const DEPENDENCY_SAMPLING_SETTING = 'PAGEWISE_TELEMETRY_DEPENDENCY_SAMPLING';
export const DEFAULT_DEPENDENCY_SAMPLING_PERCENT = 1;

export interface TelemetrySettings {
  connectionString?: string;
  dependencySamplingPercent: number;
}

export function telemetrySettings(env: Env = appSettings()): TelemetrySettings {
  const raw = env[DEPENDENCY_SAMPLING_SETTING]?.trim();
  let percent = DEFAULT_DEPENDENCY_SAMPLING_PERCENT;
  if (raw) {
    percent = Number(raw);
    if (!Number.isFinite(percent) || percent < 0 || percent > 100) {
      throw new Error(`${DEPENDENCY_SAMPLING_SETTING} must be a percentage from 0 to 100, not ${JSON.stringify(raw.slice(0, 32))}`);
    }
  }
  const connectionString = env[CONNECTION_STRING_SETTING]?.trim();
  return { ...(connectionString ? { connectionString } : {}), dependencySamplingPercent: percent };
}

// ---- the SDK --------------------------------------------------------------------------------------

interface Sinks {
  logger: Logger;
  meter: Meter;
  histograms: Map<string, Histogram>;
  storageRequests: Counter;
}

let sinks: Sinks | undefined;
let started = false;

/** Marks Pagewise's own log records: only they get the operation id of their instance. */
const OPERATION_MARK = 'pagewise.operation';
/** Attribute names of the Azure Monitor exporter's custom events (@azure/monitor-opentelemetry-exporter). */
const CUSTOM_EVENT_NAME = 'microsoft.custom_event.name';
const CUSTOM_MEASUREMENTS = 'microsoft.custom_measurements';

/**
 * Starts the SDK once per process when a connection string is configured; true when telemetry is on.
 * Called as the app loads (functions/index.ts), so outgoing calls are sampled from the first one.
 */
export function startTelemetry(env: Env = appSettings()): boolean {
  if (started) return sinks !== undefined;
  started = true;
  let settings: TelemetrySettings;
  try {
    settings = telemetrySettings(env);
  } catch (err) {
    // A mistyped sampling percentage must not keep the app (or its telemetry) from starting: say so, use the default.
    console.error(`${(err as Error).message}; using ${DEFAULT_DEPENDENCY_SAMPLING_PERCENT} %`);
    settings = telemetrySettings({ ...env, [DEPENDENCY_SAMPLING_SETTING]: undefined });
  }
  if (!settings.connectionString) return false;
  // No telemetry about the telemetry to Microsoft's own statsbeat workspace: an operator's data goes to
  // their own resource only (an operator may still opt in by setting the variable to an empty value).
  process.env.APPLICATION_INSIGHTS_NO_STATSBEAT ??= 'true';
  // Resource detectors that read the environment only (no instance-metadata calls).
  process.env.OTEL_NODE_RESOURCE_DETECTORS ??= 'env,host,os,azure_functions,azure_app_service';
  skipVmMetadataProbe();
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when configured
  const ai = require('applicationinsights') as typeof import('applicationinsights');
  ai.useAzureMonitor({
    azureMonitorExporterOptions: { connectionString: settings.connectionString },
    // Live metrics open a channel to Microsoft's live-diagnostics endpoint; per-process performance
    // counters and standard metrics add items every minute whatever Pagewise does (docs/SCALE.md).
    enableLiveMetrics: false,
    enablePerformanceCounters: false,
    enableStandardMetrics: false,
    // Sampling of dependencies is Pagewise's own (below); an event must never be dropped with a trace.
    samplingRatio: 1,
    tracesPerSecond: 0,
    enableTraceBasedSamplingForLogs: false,
    instrumentationOptions: {
      // One item per HTTP call is what a backup must not cost (docs/SCALE.md): storage calls are observed
      // in core's pipeline instead (counted, sampled below). Requests reach the Functions host, which
      // reports them itself (the worker's HTTP proxy would only double them).
      http: { enabled: false },
      azureSdk: { enabled: false },
      mongoDb: { enabled: false },
      mySql: { enabled: false },
      postgreSql: { enabled: false },
      redis: { enabled: false },
      bunyan: { enabled: false },
      winston: { enabled: false },
      console: { enabled: false },
    },
    spanProcessors: [redactingSpans],
    logRecordProcessors: [redactingLogs, operationIds],
  });
  stopRemoteConfiguration();
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the same API instance the SDK registered with
  const api = require('@opentelemetry/api') as typeof import('@opentelemetry/api');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const apiLogs = require('@opentelemetry/api-logs') as typeof import('@opentelemetry/api-logs');
  const meter = api.metrics.getMeter('pagewise');
  sinks = {
    logger: apiLogs.logs.getLogger('pagewise'),
    meter,
    histograms: new Map(),
    storageRequests: meter.createCounter(STORAGE_REQUESTS_METRIC, { description: 'storage requests sent (every attempt), before dependency sampling' }),
  };
  const tracer = api.trace.getTracer('pagewise');
  // Every (100/percent)-th request is kept, evenly spread: of n requests exactly ⌊n·percent/100⌋ become items.
  const percent = settings.dependencySamplingPercent;
  let requests = 0;
  observeStorageRequests((record) => {
    requests++;
    sinks?.storageRequests.add(1, { service: serviceOf(record.host), method: record.method, status: statusClass(record.status) });
    if (Math.floor((requests * percent) / 100) === Math.floor(((requests - 1) * percent) / 100)) return;
    const span = tracer.startSpan(`${record.method} ${record.path.split('/').slice(0, 2).join('/')}`, {
      kind: api.SpanKind.CLIENT,
      startTime: record.startedAt,
      attributes: {
        'http.method': record.method,
        'http.url': `${record.protocol}//${record.host}${record.path}`,
        ...(record.status !== undefined ? { 'http.status_code': record.status } : {}),
        'pagewise.sampledPercent': percent,
      },
    }, api.ROOT_CONTEXT);
    if (record.status === undefined || record.status >= 400) span.setStatus({ code: api.SpanStatusCode.ERROR });
    span.end(new Date(record.startedAt.getTime() + record.durationMs));
  });
  return true;
}

/** Every storage request, counted by service, method and status class (the aggregate that replaces one item each). */
export const STORAGE_REQUESTS_METRIC = 'Pagewise.StorageRequests';

function serviceOf(host: string): string {
  return /^[^.]+\.(blob|queue|table|file|dfs)\./i.exec(host)?.[1]?.toLowerCase() ?? 'blob';
}

function statusClass(status: number | undefined): string {
  return status === undefined ? 'none' : `${Math.floor(status / 100)}xx`;
}

/**
 * Off App Service and Functions (a local `pagewise serve`, a test) the distro asks the Azure VM metadata
 * service (169.254.169.254) for resource attributes on every start; Pagewise sends to its ingestion
 * endpoint only, so that probe answers nothing (in Azure the platform's own detectors name the app).
 */
function skipVmMetadataProbe(): void {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const detectors = require('@opentelemetry/resource-detector-azure') as { azureVmDetector?: { detect(): unknown } };
    if (detectors.azureVmDetector) detectors.azureVmDetector.detect = () => ({});
  } catch {
    // not installed with this SDK version: no probe to skip
  }
}

/**
 * The exporter polls Microsoft's OneSettings service (settings.sdk.monitor.azure.com) for its own feature
 * flags, with no setting to turn it off: stopped here, so the app talks only to its ingestion endpoint.
 * Internal to the exporter, hence looked up defensively; docs/TELEMETRY.md says what this turns off.
 */
function stopRemoteConfiguration(): void {
  try {
    const main = require.resolve('@azure/monitor-opentelemetry-exporter');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(path.dirname(main), '_configuration', 'configurationManager.js')) as {
      ConfigurationManager?: { getInstance(): { shutdown(): void } };
    };
    mod.ConfigurationManager?.getInstance().shutdown();
  } catch {
    // another exporter version: nothing of that name to stop
  }
}

/** No URL of a span keeps its SAS: every string attribute is redacted as the span starts (its URL is set then). */
const redactingSpans: SpanProcessor = {
  onStart(span: Span) {
    for (const [key, value] of Object.entries(span.attributes)) {
      if (typeof value === 'string') {
        const clean = redact(value);
        if (clean !== value) span.setAttribute(key, clean);
      }
    }
  },
  onEnd() {},
  forceFlush: async () => {},
  shutdown: async () => {},
};

/** The same for log records (events, exceptions): their attributes and message pass redact. */
const redactingLogs: LogRecordProcessor = {
  onEmit(record: SdkLogRecord) {
    for (const [key, value] of Object.entries(record.attributes)) {
      if (typeof value === 'string') {
        const clean = redact(value);
        if (clean !== value) record.setAttribute(key, clean);
      }
    }
    if (typeof record.body === 'string') record.setBody(redact(record.body));
  },
  forceFlush: async () => {},
  shutdown: async () => {},
};

/**
 * Operation id = orchestration instance ID. OpenTelemetry takes the operation id from a span context's
 * trace ID, which must be 32 hex digits, so an instance ID cannot be set through a context; Pagewise's
 * records get it here, before the exporter turns `spanContext.traceId` into `ai.operation.id`.
 */
const operationIds: LogRecordProcessor = {
  onEmit(record: SdkLogRecord) {
    const instanceId = record.attributes.instanceId;
    if (record.attributes[OPERATION_MARK] === undefined || typeof instanceId !== 'string') return;
    (record as { spanContext?: { traceId: string; spanId: string; traceFlags: number } }).spanContext = { traceId: instanceId, spanId: '', traceFlags: 1 };
  },
  forceFlush: async () => {},
  shutdown: async () => {},
};

/** Sends what is queued now (a test, or an app shutting down); nothing when telemetry is off. */
export async function flushTelemetry(): Promise<void> {
  if (!sinks) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  await (require('applicationinsights') as typeof import('applicationinsights')).flushAzureMonitor();
}

/** Ends the SDK (tests): after it, startTelemetry starts again from the settings then in force. */
export async function stopTelemetry(): Promise<void> {
  observeStorageRequests(undefined);
  if (sinks) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    await (require('applicationinsights') as typeof import('applicationinsights')).shutdownAzureMonitor();
  }
  sinks = undefined;
  started = false;
}

// ---- events and metrics ---------------------------------------------------------------------------

export interface TelemetryEvent {
  name: string;
  properties: Record<string, string>;
  measurements: Record<string, number>;
}

/** Sends one custom event (customEvents), with the operation id of its `instanceId` property when it has one. */
export function trackEvent(event: TelemetryEvent): void {
  if (!startTelemetry() || !sinks) return;
  const measurements = finiteOnly(event.measurements);
  sinks.logger.emit({
    body: { measurements },
    attributes: {
      ...event.properties,
      [CUSTOM_EVENT_NAME]: event.name,
      [CUSTOM_MEASUREMENTS]: JSON.stringify(measurements),
      ...(event.properties.instanceId ? { [OPERATION_MARK]: event.properties.operation ?? '' } : {}),
    },
  });
}

/** Records one value of a custom metric (customMetrics: aggregated per minute and dimension set). */
export function trackMetric(name: string, value: number, properties: Record<string, string>): void {
  if (!startTelemetry() || !sinks || !Number.isFinite(value)) return;
  let histogram = sinks.histograms.get(name);
  if (!histogram) {
    histogram = sinks.meter.createHistogram(name);
    sinks.histograms.set(name, histogram);
  }
  histogram.record(value, properties as Attributes);
}

function finiteOnly(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => typeof v === 'number' && Number.isFinite(v)));
}

/**
 * The operations an operator follows, each with started/completed/failed events (docs/TELEMETRY.md), and
 * what started one (an alert on scheduled verifications filters on `trigger == 'timer'`): the same
 * names the orchestration inputs carry.
 */
export type OperationKind = OperationReportKind;
export type { OperationTrigger };
export type OperationPhase = 'Started' | 'Completed' | 'Failed';

export const OPERATION_KINDS: readonly OperationKind[] = ['backup', 'vm-backup', 'restore', 'verify', 'prune'];
export const OPERATION_PHASES: readonly OperationPhase[] = ['Started', 'Completed', 'Failed'];
export const OPERATION_TRIGGERS: readonly OperationTrigger[] = ['http', 'timer', 'queue', 'eventgrid', 'cli'];

export interface OperationEventProperties {
  /** The orchestration instance ID: the operation ID every item of this operation is correlated with. */
  instanceId: string;
  trigger?: OperationTrigger;
  /** The disk as displayUrl shows it (no SAS): the alert "no successful backup in 26 h" groups by it. */
  disk?: string;
  backupId?: string;
  reason?: string;
  errorCode?: string;
}

/** `Pagewise<Kind><Phase>`, e.g. PagewiseBackupFailed, PagewiseVmBackupStarted, PagewiseVerifyFailed. */
export function operationEventName(kind: OperationKind, phase: OperationPhase): string {
  const pascal = kind.split('-').map((w) => w[0].toUpperCase() + w.slice(1)).join('');
  return `Pagewise${pascal}${phase}`;
}

export function operationEvent(kind: OperationKind, phase: OperationPhase, properties: OperationEventProperties, measurements: Record<string, number> = {}): TelemetryEvent {
  const props: Record<string, string> = { operation: kind };
  for (const [k, v] of Object.entries(properties)) if (v !== undefined) props[k] = k === 'disk' ? displayUrl(String(v)) : redact(String(v));
  return { name: operationEventName(kind, phase), properties: props, measurements };
}

export function trackOperationEvent(kind: OperationKind, phase: OperationPhase, properties: OperationEventProperties, measurements: Record<string, number> = {}): void {
  trackEvent(operationEvent(kind, phase, properties, measurements));
}

/** The custom metrics of an operation (SPEC #18), each with the dimensions {operation, instanceId, disk}. */
export const OPERATION_METRICS = {
  bytesRead: 'Pagewise.BytesRead',
  bytesStored: 'Pagewise.BytesStored',
  bytesNew: 'Pagewise.BytesNew',
  pages: 'Pagewise.Pages',
  throughputMiBps: 'Pagewise.ThroughputMiBps',
  durationMs: 'Pagewise.DurationMs',
  cacheHighWaterBytes: 'Pagewise.CacheHighWaterBytes',
} as const;

export type OperationFigures = Partial<Record<keyof typeof OPERATION_METRICS, number>>;

/** Records an operation's figures as its custom metrics (those it has). */
export function trackOperationMetrics(kind: OperationKind, properties: OperationEventProperties, figures: OperationFigures): void {
  const dims: Record<string, string> = { operation: kind, instanceId: properties.instanceId, disk: properties.disk ? displayUrl(properties.disk) : '' };
  for (const [key, name] of Object.entries(OPERATION_METRICS)) {
    const value = figures[key as keyof typeof OPERATION_METRICS];
    if (value !== undefined) trackMetric(name, value, dims);
  }
}

// #18 auth: one custom event per audit entry (functions/auth/audit.ts), secret-free by construction.
export function trackCustomEvent(event: TelemetryEvent): void {
  trackEvent(event);
}
