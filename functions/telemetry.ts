/**
 * Application Insights for the function app: when APPLICATIONINSIGHTS_CONNECTION_STRING is set (in
 * Azure, by infra/), the SDK collects requests, dependencies (every storage call) and exceptions, and
 * Pagewise adds one custom event per finished backup with the figures an operator watches (bytes read
 * against allocated, bytes stored, cache high-water, duration). Without the setting nothing is sent.
 * Only redacted, secret-free values go into telemetry.
 */
import type { TelemetryClient } from 'applicationinsights';
import { BackupResult, displayUrl } from '../core';

let client: TelemetryClient | undefined;
let started = false;

function telemetry(): TelemetryClient | undefined {
  if (started) return client;
  started = true;
  const connectionString = process.env.APPLICATIONINSIGHTS_CONNECTION_STRING;
  if (!connectionString) return undefined;
  // Loaded only when configured: the SDK sets up OpenTelemetry exporters as it loads.
  const appInsights = require('applicationinsights') as typeof import('applicationinsights');
  appInsights.setup(connectionString).setAutoCollectConsole(false).start();
  client = appInsights.defaultClient;
  return client;
}

export interface TelemetryEvent {
  name: string;
  properties: Record<string, string>;
  measurements: Record<string, number>;
}

/** The custom event for a finished backup: identifiers and counts only, the source without its SAS. */
export function backupCompletedEvent(result: BackupResult, source: string): TelemetryEvent {
  return {
    name: 'PagewiseBackupCompleted',
    // kind/reason say whether the run read only what changed, and if not, why (an operator's first question).
    properties: { backupId: result.backupId, source: displayUrl(source), kind: result.kind, ...(result.reason ? { reason: result.reason } : {}) },
    measurements: {
      diskBytes: result.diskBytes,
      allocatedBytes: result.allocatedBytes,
      bytesRead: result.bytesRead,
      bytesStored: result.bytesStored,
      bytesChanged: result.bytesChanged,
      bytesNew: result.bytesNew,
      pages: result.pages,
      zeroPages: result.zeroPages,
      dedupedPages: result.dedupedPages,
      segments: result.segments,
      durationMs: result.durationMs,
    },
  };
}

export function trackBackupCompleted(result: BackupResult, source: string): void {
  telemetry()?.trackEvent(backupCompletedEvent(result, source));
}

/** The operations an operator follows, each with started/completed/failed events (docs/TELEMETRY.md). */
export type OperationKind = 'backup' | 'vm-backup' | 'restore' | 'verify' | 'prune';
export type OperationPhase = 'Started' | 'Completed' | 'Failed';
/** What started an operation: an alert on scheduled verifications filters on `trigger == 'timer'`. */
export type OperationTrigger = 'http' | 'timer' | 'queue' | 'eventgrid' | 'cli';

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
  for (const [k, v] of Object.entries(properties)) if (v !== undefined) props[k] = k === 'disk' ? displayUrl(String(v)) : String(v);
  return { name: operationEventName(kind, phase), properties: props, measurements };
}

export function trackOperationEvent(kind: OperationKind, phase: OperationPhase, properties: OperationEventProperties, measurements: Record<string, number> = {}): void {
  telemetry()?.trackEvent(operationEvent(kind, phase, properties, measurements));
}

// #18 auth: one custom event per audit entry (functions/auth/audit.ts), secret-free by construction.
export function trackCustomEvent(event: TelemetryEvent): void {
  telemetry()?.trackEvent(event);
}
