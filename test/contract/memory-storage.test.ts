import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';
import { storageContract } from './storage-contract.js';

storageContract('memory', async () => {
  const storage = createMemoryStorage();
  return { storage, close: () => storage.close() };
});
