#!/usr/bin/env node
// The `vault` command (CLI and `vault mcp`). Runs the TypeScript sources through tsx, which
// `npm ci` installs, so `npx vault ...` works in a checkout without a build step.
import { register } from 'tsx/esm/api';

register();
const { runCli, processIo } = await import('../src/cli/main.ts');
process.exitCode = await runCli(process.argv.slice(2), processIo());
