import './quiet-node-warning.js';
import { main } from '../main.js';

// `pnpm demo [--duration S] [--data-dir DIR]`: `pifleet-sim demo` without the launcher.
await main(['demo', ...process.argv.slice(2)]);
