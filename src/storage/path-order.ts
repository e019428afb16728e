/** Orders strings by their UTF-8 bytes, as the MySQL store's binary path column does. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
