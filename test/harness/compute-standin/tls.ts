/**
 * The stand-in's TLS: one self-signed certificate for 127.0.0.1 made with `openssl` per test run (jest
 * globalSetup makes it and exports NODE_EXTRA_CA_CERTS so workers and spawned CLIs trust it), and the
 * trust of a process that started before the certificate existed (jest running one file in band).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { ensureTools } from '../../../testkit/debian-tools';

/** Where globalSetup put the certificate of this run (a directory with cert.pem and key.pem). */
export const TLS_DIR_ENV = 'PAGEWISE_TEST_TLS_DIR';

export interface StandInCert {
  dir: string;
  certFile: string;
  cert: string;
  key: string;
}

/** Makes a certificate for 127.0.0.1 in a new temporary directory (about 50 ms of openssl). */
export function makeStandInCert(): StandInCert {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pagewise-test-tls-'));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  // openssl comes from the project's files too on a fresh machine (apt, like the file-system tools).
  const { openssl } = ensureTools(['openssl']);
  execFileSync(openssl, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3',
    '-subj', '/CN=Pagewise test Compute stand-in', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', keyFile, '-out', certFile,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { dir, certFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

let own: StandInCert | undefined;

/** This run's certificate (globalSetup's), or one made once per process when the stand-in is used outside jest. */
export function standInCert(env: NodeJS.ProcessEnv = process.env): StandInCert {
  const dir = env[TLS_DIR_ENV];
  if (dir && existsSync(path.join(dir, 'cert.pem'))) {
    const certFile = path.join(dir, 'cert.pem');
    return { dir, certFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(path.join(dir, 'key.pem'), 'utf8') };
  }
  own ??= makeStandInCert();
  return own;
}

const trusted = new Map<string, string>(); // "127.0.0.1:port" → certificate
let patched = false;

/**
 * Trusts `cert` for connections to 127.0.0.1:`port` in this process. NODE_EXTRA_CA_CERTS is read only at
 * process start, so a process older than the certificate (jest in band) would refuse the stand-in; the
 * SDK's https agents make their connections through https.Agent#createConnection, where the CA of that
 * one loopback endpoint is added. Other hosts keep Node's default trust.
 */
export function trustInThisProcess(port: number, cert: string): () => void {
  const key = `127.0.0.1:${port}`;
  trusted.set(key, cert);
  if (!patched) {
    patched = true;
    const original = https.Agent.prototype.createConnection as (...args: unknown[]) => unknown;
    (https.Agent.prototype as unknown as { createConnection: unknown }).createConnection = function (this: https.Agent, options: tls.ConnectionOptions, ...rest: unknown[]) {
      const ca = trusted.get(`${options.host}:${options.port}`);
      const effective = ca && !options.ca ? { ...options, ca: [...tls.rootCertificates, ca] } : options;
      return original.call(this, effective, ...rest);
    };
  }
  return () => trusted.delete(key);
}
