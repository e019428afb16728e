// Proves the database test harness itself: a real server, a fresh database per call, and drop().
import { createConnection } from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { afterEach, expect, inject, it } from 'vitest';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';

describeWithDatabase('database test harness', () => {
  const created: TestDatabase[] = [];
  afterEach(async () => {
    // Don't leave databases behind on a shared server when an assertion fails midway.
    await Promise.all(created.splice(0).map((db) => db.drop()));
  });

  async function create(): Promise<TestDatabase> {
    const db = await createTestDatabase();
    expect(db, 'createTestDatabase() returned null although a server is available').not.toBeNull();
    created.push(db!);
    return db!;
  }

  async function databaseNames(): Promise<string[]> {
    const server = await createConnection(inject('databaseServerUrl')!);
    try {
      const [rows] = await server.query<RowDataPacket[]>('SHOW DATABASES');
      return rows.map((row) => String(row.Database));
    } finally {
      await server.end();
    }
  }

  it('creates a usable database, then drops it', async () => {
    const db = await create();
    expect(db.name).toMatch(/^vault_test_[0-9a-f]+$/);
    expect(new URL(db.url).pathname).toBe(`/${db.name}`);
    expect(await databaseNames()).toContain(db.name);

    const sql = await createConnection(db.url);
    try {
      const [[current]] = await sql.query<RowDataPacket[]>('SELECT DATABASE() AS name');
      expect(current?.name).toBe(db.name);
      await sql.query('CREATE TABLE harness_check (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL)');
      await sql.execute('INSERT INTO harness_check (id, note) VALUES (?, ?)', [1, 'hello']);
      const [rows] = await sql.query<RowDataPacket[]>('SELECT id, note FROM harness_check');
      expect(rows.map((row) => ({ ...row }))).toEqual([{ id: 1, note: 'hello' }]);
    } finally {
      await sql.end();
    }

    await db.drop();
    expect(await databaseNames()).not.toContain(db.name);
    await db.drop(); // idempotent
  });

  it('gives every call its own database', async () => {
    const [a, b] = await Promise.all([create(), create()]);
    expect(a.name).not.toBe(b.name);
    const names = await databaseNames();
    expect(names).toContain(a.name);
    expect(names).toContain(b.name);
  });
});
