// Certificates for TLS tests, made with the openssl CLI in a temporary directory: a CA per call,
// and leaf certificates it signs with a random serial, so a test can tell which one was served.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface Issued {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  /** Upper-case hex, as `X509Certificate.serialNumber` and `getPeerCertificate().serialNumber` spell it. */
  serial: string;
}

export interface TestCa {
  /** The CA certificate (PEM) and its file. */
  cert: Buffer;
  certFile: string;
  /** A server certificate for 127.0.0.1 and localhost (or `hosts`: `IP:x` / `DNS:x` entries). */
  server(name: string, hosts?: string[]): Promise<Issued>;
  /** A client certificate (extendedKeyUsage clientAuth). */
  client(name: string): Promise<Issued>;
}

export interface TestPki {
  dir: string;
  /** A new CA with its own key; certificates of one CA are not trusted by another. */
  ca(name: string): Promise<TestCa>;
  remove(): Promise<void>;
}

const openssl = (dir: string, args: string[]) => execFileAsync('openssl', args, { cwd: dir });
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'vault-test-pki-'));
  return {
    dir,
    async ca(name) {
      const base = join(dir, `${name}-ca`);
      await openssl(dir, [
        'req', '-x509', ...EC_KEY, '-keyout', `${base}.key`, '-out', `${base}.crt`, '-days', '2', '-subj', `/CN=${name} test CA`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      ]);
      const issue = async (leaf: string, extensions: string): Promise<Issued> => {
        const leafBase = join(dir, `${name}-${leaf}-${randomBytes(3).toString('hex')}`);
        const serial = randomBytes(8);
        serial[0] = (serial[0]! & 0x7f) | 0x10; // positive and no leading zero byte, so hex round-trips
        await writeFile(`${leafBase}.ext`, extensions);
        await openssl(dir, ['req', ...EC_KEY, '-keyout', `${leafBase}.key`, '-out', `${leafBase}.csr`, '-subj', `/CN=${leaf}`]);
        await openssl(dir, [
          'x509', '-req', '-in', `${leafBase}.csr`, '-CA', `${base}.crt`, '-CAkey', `${base}.key`, '-set_serial', `0x${serial.toString('hex')}`,
          '-days', '2', '-out', `${leafBase}.crt`, '-extfile', `${leafBase}.ext`,
        ]);
        return {
          certFile: `${leafBase}.crt`,
          keyFile: `${leafBase}.key`,
          cert: await readFile(`${leafBase}.crt`),
          key: await readFile(`${leafBase}.key`),
          serial: serial.toString('hex').toUpperCase(),
        };
      };
      return {
        cert: await readFile(`${base}.crt`),
        certFile: `${base}.crt`,
        server: (leaf, hosts = ['IP:127.0.0.1', 'DNS:localhost']) =>
          issue(leaf, `subjectAltName=${hosts.join(',')}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`),
        client: (leaf) => issue(leaf, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n'),
      };
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
