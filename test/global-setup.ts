/**
 * jest globalSetup: one TLS certificate per run for the loopback Compute stand-in
 * (test/harness/compute-standin), trusted by jest workers and spawned CLIs through NODE_EXTRA_CA_CERTS
 * (read at process start, so set here, before jest forks its workers).
 */
import { makeStandInCert, TLS_DIR_ENV } from './harness/compute-standin/tls';

export default function globalSetup(): void {
  if (process.env[TLS_DIR_ENV]) return; // a watch re-run keeps the run's certificate
  const cert = makeStandInCert();
  process.env[TLS_DIR_ENV] = cert.dir;
  process.env.NODE_EXTRA_CA_CERTS = cert.certFile;
}
