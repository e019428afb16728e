/**
 * Lease names and their limits, shared by both stores. A name says what the holder does, so one
 * look at the leases table tells who runs what.
 */
export const MAX_LEASE_NAME_BYTES = 64;
export const MAX_LEASE_HOLDER_BYTES = 255;

/** Refuses a name, holder or TTL the store could not keep as given (never silently truncated). */
export function checkLeaseRequest(name: string, holder: string, ttlMs: number): void {
  if (typeof name !== 'string' || name === '' || Buffer.byteLength(name) > MAX_LEASE_NAME_BYTES) {
    throw new TypeError(`a lease name must be 1 to ${MAX_LEASE_NAME_BYTES} bytes`);
  }
  if (typeof holder !== 'string' || holder === '' || Buffer.byteLength(holder) > MAX_LEASE_HOLDER_BYTES) {
    throw new TypeError(`a lease holder must be 1 to ${MAX_LEASE_HOLDER_BYTES} bytes`);
  }
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > 3_600_000) {
    throw new TypeError('a lease TTL must be a whole number of milliseconds from 1 to 3,600,000');
  }
}
