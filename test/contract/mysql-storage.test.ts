import { createMysqlStorage } from '../../src/storage/mysql/mysql-store.js';
import { createTestDatabase } from '../support/database.js';
import { stagedRotationContract } from './staged-rotation-contract.js';
import { storageContract } from './storage-contract.js';

// Each test gets a fresh database (migrated by createMysqlStorage), dropped again on close.
// Outside CI without a server, createTestDatabase() returns null and the suite skips.
const open = async () => {
  const database = await createTestDatabase();
  if (!database) return null;
  try {
    const storage = await createMysqlStorage({ url: database.url, poolSize: 5 });
    return {
      storage,
      async close() {
        await storage.close();
        await database.drop();
      },
    };
  } catch (error) {
    await database.drop();
    throw error;
  }
};
storageContract('mysql', open);
stagedRotationContract('mysql', open);
