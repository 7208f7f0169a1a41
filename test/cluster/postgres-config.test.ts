import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError, validateConfig } from "../../src/config/load.js";

const base = { sites: [{ id: "s", name: "S", units: [{ id: "u", name: "U" }] }] };

function problems(postgres: unknown): { path: string; message: string }[] {
  try {
    validateConfig({ ...base, cluster: { postgres } }, "test", new Set());
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("cluster.postgres configuration", () => {
  it("is absent by default: one node on SQLite", () => {
    expect(validateConfig(base, "test", new Set()).cluster.postgres).toBeUndefined();
  });

  it("takes a URL and fills the rest with defaults, the node named after its host", () => {
    const c = validateConfig(
      { ...base, cluster: { postgres: { url: "postgres://ata:pw@db:5432/ata" } } },
      "test",
      new Set(),
    ).cluster.postgres;
    expect(c).toEqual({
      url: "postgres://ata:pw@db:5432/ata",
      nodeId: hostname(),
      partitions: 64,
      leaseMs: 10_000,
      poolSize: 10,
      readPoolSize: 4,
      eventRetentionDays: 30,
      changeFeedRetentionHours: 24,
      commandTimeoutMs: 5_000,
    });
    expect(
      validateConfig(
        { ...base, cluster: { postgres: { url: "postgresql://db/ata", nodeId: "gw-2" } } },
        "test",
        new Set(),
      ).cluster.postgres?.nodeId,
    ).toBe("gw-2");
  });

  it("lists every problem by its path", () => {
    expect(
      problems({
        url: "mysql://db/ata",
        nodeId: "gw 1",
        partitions: 0,
        leaseMs: 500,
        poolSize: 1,
        readPoolSize: 0,
        changeFeedRetentionHours: 0.5,
        commandTimeoutMs: 61_000,
        extra: true,
      }).map((p) => p.path),
    ).toEqual([
      "cluster.postgres.url",
      "cluster.postgres.nodeId",
      "cluster.postgres.partitions",
      "cluster.postgres.leaseMs",
      "cluster.postgres.poolSize",
      "cluster.postgres.readPoolSize",
      "cluster.postgres.changeFeedRetentionHours",
      "cluster.postgres.commandTimeoutMs",
      // The unknown key, named by the object that has it.
      "cluster.postgres",
    ]);
    expect(problems({})).toEqual([{ path: "cluster.postgres.url", message: expect.any(String) }]);
    // Both ends of the partitions' range.
    expect(problems({ url: "postgres://db/ata", partitions: 1 })).toEqual([]);
    expect(problems({ url: "postgres://db/ata", partitions: 1024 })).toEqual([]);
    expect(problems({ url: "postgres://db/ata", partitions: 1025 }).map((p) => p.path)).toEqual([
      "cluster.postgres.partitions",
    ]);
  });
});
