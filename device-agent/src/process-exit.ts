/**
 * How the agent's processes end (`pifleet-agent`, and `pifleet-sim`, which runs the same agent
 * core): for a `main` only.
 */

/**
 * Ends the process with `code` once stdout and stderr have been handed to the OS, never by letting
 * the event loop run dry. A natural exit tears the Node environment down, and aws-crt 1.33 aborts
 * the process on the way (exit status 255, `aws_napi_release_threadsafe_function` in the stack):
 * a shadow delta stream (and a 3.1.1 connection that never connected, and an MQTT 5 client not yet
 * garbage-collected) keeps thread-safe functions that only the finalizer of its JS wrapper
 * releases, the functions hold the wrapper through their callbacks, so that finalizer runs only at
 * teardown — after Node has already freed the functions. `process.exit()` skips that teardown.
 * Measured with `pifleet-sim agent` after a shadow delta: 12 of 12 natural exits aborted, 0 of 12
 * explicit ones (test/e2e/sigterm.test.ts stops 60 agent processes).
 */
export function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
  // A reader that stopped reading must not keep the process alive (nor let it exit naturally).
  setTimeout(() => process.exit(code), 2_000);
}
