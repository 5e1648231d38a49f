// Imported first by the demo's entry: the AWS SDK warns (on import and per client) that its Node 20
// support ends. For a demo that is noise on every run, so only that warning is dropped; every
// other warning is still printed.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!`${w.name} ${w.message}`.includes('NodeVersionSupportWarning'))
    process.stderr.write(`${w.name}: ${w.message}\n`);
});
