#!/usr/bin/env node
// Prints README's "Errors and exit codes" table from the catalog (src/util/error-codes.ts).
// Run after tsc: node scripts/error-table.mjs (src/util/error-codes.test.ts checks the README).
import { ERROR_CODES } from '../dist/util/error-codes.js';

const rows = Object.entries(ERROR_CODES).map(([code, i]) => `| \`${code}\` | ${i.meaning} | ${i.exit} | ${i.http} |`);
process.stdout.write(['| code | meaning | exit | HTTP |', '|---|---|---|---|', ...rows].join('\n') + '\n');
