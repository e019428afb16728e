import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';
import { stagedRotationContract } from './staged-rotation-contract.js';
import { storageContract } from './storage-contract.js';

const open = async () => {
  const storage = createMemoryStorage();
  return { storage, close: () => storage.close() };
};
storageContract('memory', open);
stagedRotationContract('memory', open);
