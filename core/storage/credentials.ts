/**
 * The one place a default Azure credential is made: DefaultAzureCredential (managed identity in Azure,
 * the developer's sign-in locally), created once per process and shared by storage and Compute clients.
 * Callers with their own TokenCredential pass it in a StorageLocation instead.
 */
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';

export type { TokenCredential };

let shared: TokenCredential | undefined;

/** The process's default credential, made on first use (it reads the environment then). */
export function defaultCredential(): TokenCredential {
  shared ??= new DefaultAzureCredential();
  return shared;
}
