import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Real sockets and child processes: two workers match the two cores of the reference machine.
    maxWorkers: 2,
  },
});
