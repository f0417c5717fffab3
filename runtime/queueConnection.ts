/**
 * Resolves a queue trigger's `connection` the way the Functions host does: the app setting of that name
 * (or `AzureWebJobs<name>`) holds a connection string; or, identity-based, `<name>__queueServiceUri`
 * (or `<name>__accountName`) with the app's Azure credential (`<name>__clientId` for a user-assigned one).
 */
import { DefaultAzureCredential } from '@azure/identity';
import { QueueServiceClient } from '@azure/storage-queue';
import { redact } from '../core';

export type AppSettingsEnv = Record<string, string | undefined>;

function setting(env: AppSettingsEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/** The queue service of connection `name`; throws naming the settings looked at (never their values). */
export function queueServiceFor(name: string, env: AppSettingsEnv): QueueServiceClient {
  const connectionString = setting(env, name) ?? setting(env, `AzureWebJobs${name}`);
  if (connectionString) {
    const has = (key: string) => new RegExp(`(^|;)\\s*${key}\\s*=`, 'i').test(connectionString);
    // A string with explicit endpoints but no QueueEndpoint (a local storage emulator's blob-only string)
    // would otherwise send the queue requests to the public cloud's default endpoint of its account name.
    if (!has('QueueEndpoint') && !has('UseDevelopmentStorage') && (has('BlobEndpoint') || !has('AccountName'))) {
      throw new Error(`the connection string in app setting ${name} names no queue service: add QueueEndpoint=`);
    }
    try {
      return QueueServiceClient.fromConnectionString(connectionString);
    } catch (err) {
      throw new Error(`the connection string in app setting ${name} is not usable for queues: ${redact((err as Error).message)}`);
    }
  }
  const uri = setting(env, `${name}__queueServiceUri`) ?? accountUri(setting(env, `${name}__accountName`));
  if (uri) {
    const clientId = setting(env, `${name}__clientId`);
    return new QueueServiceClient(uri, new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {}));
  }
  throw new Error(`connection ${name} is not configured: set app setting ${name} (a connection string) or ${name}__queueServiceUri`);
}

function accountUri(account: string | undefined): string | undefined {
  if (account === undefined) return undefined;
  if (!/^[a-z0-9]{3,24}$/.test(account)) throw new Error('the storage account name of an identity-based queue connection must be 3 to 24 lowercase letters and digits');
  return `https://${account}.queue.core.windows.net`;
}
