import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/**
 * The listeners' TLS: certificate, key and (for mTLS) the client CA, read from PEM files at start
 * and again on reload (SIGHUP). Both transports serve the same material and take a reload for
 * new connections only; connections already open keep the certificate they were set up with.
 */

/** The files, as configured (`VAULT_TLS_CERT_FILE`, `VAULT_TLS_KEY_FILE`, `VAULT_TLS_CLIENT_CA_FILE`). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Set: every client must present a certificate that chains to one of these CAs (mTLS). */
  clientCaFile: string | undefined;
}

/** The PEM contents, checked to belong together, and what identifies the served certificate. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer | undefined;
  /** Of the served (first) certificate, safe to log. */
  summary: CertificateSummary;
}

export interface CertificateSummary {
  serialNumber: string;
  fingerprint256: string;
  subject: string;
  validTo: string;
}

export interface ServerTls {
  /** True when clients must present a certificate signed by the client CA. */
  readonly requireClientCertificate: boolean;
  current(): TlsMaterial;
  /**
   * Reads the files again and hands the result to every listener (both transports). If anything
   * is wrong with the new files it throws a TlsFilesError and keeps serving the current material.
   */
  reload(): TlsMaterial;
  /** Called with the new material after each successful reload; returns an unsubscribe. */
  onChange(listener: (material: TlsMaterial) => void): () => void;
}

/** Every problem with the files, each naming its variable; never any file content. */
export class TlsFilesError extends Error {
  override readonly name = 'TlsFilesError';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

const VARIABLES = { cert: 'VAULT_TLS_CERT_FILE', key: 'VAULT_TLS_KEY_FILE', clientCa: 'VAULT_TLS_CLIENT_CA_FILE' } as const;

/** Reads and checks the files: PEM that parses, a key that matches the certificate, a usable CA. */
export function loadTlsMaterial(files: TlsFiles): TlsMaterial {
  const problems: string[] = [];
  const read = (variable: string, path: string): Buffer | undefined => {
    try {
      return readFileSync(path);
    } catch (error) {
      problems.push(`${variable} names ${JSON.stringify(path)}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
  };
  const certificates = (variable: string, path: string, pem: Buffer): X509Certificate[] => {
    const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) {
      problems.push(`${variable} (${JSON.stringify(path)}) holds no PEM certificate (want "-----BEGIN CERTIFICATE-----" blocks)`);
      return [];
    }
    try {
      return blocks.map((block) => new X509Certificate(block));
    } catch {
      problems.push(`${variable} (${JSON.stringify(path)}) holds a PEM certificate that does not parse`);
      return [];
    }
  };

  const cert = read(VARIABLES.cert, files.certFile);
  const key = read(VARIABLES.key, files.keyFile);
  const clientCa = files.clientCaFile === undefined ? undefined : read(VARIABLES.clientCa, files.clientCaFile);

  const chain = cert ? certificates(VARIABLES.cert, files.certFile, cert) : [];
  let privateKey: KeyObject | undefined;
  if (key) {
    try {
      privateKey = createPrivateKey(key);
    } catch {
      // The parser's message is not repeated: it can quote the input.
      problems.push(`${VARIABLES.key} (${JSON.stringify(files.keyFile)}) holds no unencrypted PEM private key`);
    }
  }
  if (clientCa && files.clientCaFile !== undefined) certificates(VARIABLES.clientCa, files.clientCaFile, clientCa);
  const leaf = chain[0];
  if (leaf && privateKey && !leaf.checkPrivateKey(privateKey)) {
    problems.push(`${VARIABLES.key} does not match the certificate in ${VARIABLES.cert} (the first certificate there must be the server's own)`);
  }
  if (problems.length === 0 && cert && key) {
    try {
      createSecureContext({ cert, key, ca: clientCa });
    } catch (error) {
      problems.push(`${VARIABLES.cert}, ${VARIABLES.key}: OpenSSL refuses them (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (problems.length > 0 || !cert || !key || !leaf) throw new TlsFilesError(problems);
  return {
    cert,
    key,
    clientCa,
    summary: { serialNumber: leaf.serialNumber, fingerprint256: leaf.fingerprint256, subject: leaf.subject, validTo: leaf.validTo },
  };
}

/** The material both listeners serve, reloadable; `initial` saves reading the files twice at start. */
export function createServerTls(files: TlsFiles, initial: TlsMaterial = loadTlsMaterial(files)): ServerTls {
  let material = initial;
  const listeners = new Set<(material: TlsMaterial) => void>();
  return {
    requireClientCertificate: files.clientCaFile !== undefined,
    current: () => material,
    reload() {
      material = loadTlsMaterial(files);
      for (const listener of listeners) listener(material);
      return material;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
