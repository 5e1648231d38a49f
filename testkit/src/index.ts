/** @pifleet/testkit: helpers shared by the suites of every package (filled in by the test-kit change). */
export {};
