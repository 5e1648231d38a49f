/** A program for jsonLog's test: pino-like JSON lines on stdout, a line that is not JSON, then a pause. */
process.stdout.write(`${JSON.stringify({ level: 30, msg: 'starting', n: 1 })}\n`);
process.stdout.write('not json: a warning on stdout\n');
process.stdout.write(`${JSON.stringify({ level: 30, msg: 'ready', port: 4242 })}\n`);
await new Promise((r) => setTimeout(r, 300));
process.stdout.write(`${JSON.stringify({ level: 30, msg: 'late' })}\n{"msg": "cut sho`);
