/**
 * The RabbitMQ auth backend's request parsing and routing-key reading, called directly: the bodies
 * are the ones RabbitMQ 3.10.8 sent in test/cluster/rabbit-auth.test.ts.
 */
import { describe, expect, it } from "vitest";
import { topicFromRoutingKey } from "../../src/broker/topics.js";
import { parseRabbitRequest } from "../../src/cluster/rabbit-auth.js";
import { ConfigError, validateConfig } from "../../src/config/load.js";

describe("RabbitMQ auth backend requests", () => {
  it("reads a login as RabbitMQ 3.10's MQTT plugin sends it, client id included", () => {
    const parsed = parseRabbitRequest(
      "user",
      new URLSearchParams("username=dev.1&password=p%26ss+word&vhost=%2F&client_id=dev.1"),
    );
    expect(parsed).toEqual({
      ok: true,
      request: { username: "dev.1", password: "p&ss word", vhost: "/", client_id: "dev.1" },
    });
  });

  it("reads a topic check with its routing key and the variable map's client id", () => {
    const body =
      "username=dev.1&vhost=%2F&resource=topic&name=amq.topic&permission=write&tags=" +
      "&routing_key=ata.v1.dev.1.events&variable_map.client_id=dev.1&variable_map.username=dev.1&variable_map.vhost=%2F";
    const parsed = parseRabbitRequest("topic", new URLSearchParams(body));
    expect(parsed.ok && parsed.request).toMatchObject({
      username: "dev.1",
      permission: "write",
      routing_key: "ata.v1.dev.1.events",
      "variable_map.client_id": "dev.1",
    });
  });

  it("reads a resource check of a subscription queue", () => {
    const body =
      "username=dev.1&vhost=%2F&resource=queue&name=mqtt-subscription-dev.1qos1&permission=configure&tags=&client_id=dev.1";
    const parsed = parseRabbitRequest("resource", new URLSearchParams(body));
    expect(parsed.ok && parsed.request).toMatchObject({ resource: "queue", permission: "configure" });
  });

  it("refuses a parameter given twice, naming it, rather than picking one", () => {
    const parsed = parseRabbitRequest("user", new URLSearchParams("username=a&username=b&password=x"));
    expect(parsed).toEqual({ ok: false, problems: [{ path: "username", message: "given more than once" }] });
  });

  it("lists every missing or unknown-valued parameter by name", () => {
    const parsed = parseRabbitRequest(
      "resource",
      new URLSearchParams("username=a&resource=socket&permission=all"),
    );
    expect(parsed.ok).toBe(false);
    const paths = parsed.ok ? [] : parsed.problems.map((p) => p.path).sort();
    expect(paths).toEqual(["name", "permission", "resource", "vhost"]);
  });
});

describe("routing keys read as device topics", () => {
  it("takes the last word as the channel, so a device id may contain dots", () => {
    expect(topicFromRoutingKey("ata.v1.dev-1.events")).toBe("ata/v1/dev-1/events");
    expect(topicFromRoutingKey("ata.v1.ward.7.events")).toBe("ata/v1/ward.7/events");
  });

  it("reads no topic from wildcards, other roots or a missing channel", () => {
    for (const key of [
      "ata.v1.*.events",
      "ata.v1.#",
      "ata.v1.dev",
      "other.v1.dev.events",
      "ata.v1..events",
      "",
    ])
      expect(topicFromRoutingKey(key), key).toBeNull();
  });
});

describe("cluster configuration", () => {
  const base = { sites: [{ id: "s", name: "S", units: [{ id: "u", name: "U" }] }] };

  it("is off by default", () => {
    expect(validateConfig(base, "test", new Set()).cluster.rabbitmq.enabled).toBe(false);
  });

  it("lists every problem by path: no shared secret, and a user name that cannot go into a URL", () => {
    let error: unknown;
    try {
      validateConfig(
        { ...base, cluster: { rabbitmq: { enabled: true, username: "a b" } } },
        "test",
        new Set(),
      );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      { path: "cluster.rabbitmq.username", message: "letters, digits, _ . - (it goes into a URL)" },
      {
        path: "cluster.rabbitmq.secret",
        message: "the RabbitMQ auth endpoints need a shared secret (32 or more characters); set one",
      },
    ]);
  });

  it("lists every problem of the ingest consumer by path, and refuses it without the gateway's topic checks", () => {
    let error: unknown;
    try {
      validateConfig(
        {
          ...base,
          cluster: {
            rabbitmq: {
              ingest: {
                url: "http://rabbit:5672",
                queue: "amq.mine",
                prefetch: 0,
                maxDeliveries: 0,
                reconnect: { minMs: 5000, maxMs: 1000 },
              },
            },
          },
        },
        "test",
        new Set(),
      );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.path)).toEqual([
      "cluster.rabbitmq.ingest.url",
      "cluster.rabbitmq.ingest.queue",
      "cluster.rabbitmq.ingest.prefetch",
      "cluster.rabbitmq.ingest.maxDeliveries",
      "cluster.rabbitmq.ingest.reconnect.minMs",
      "cluster.rabbitmq.enabled",
    ]);
  });

  it("takes an AMQP URL with its user, and defaults the queue, partitions, prefetch, delivery limit, reconnect waits and an idle load spread", () => {
    const cluster = {
      rabbitmq: { enabled: true, secret: "s".repeat(32), ingest: { url: "amqp://127.0.0.1" } },
    };
    expect(() => validateConfig({ ...base, cluster }, "test", new Set())).toThrow(/name the user in the URL/);
    cluster.rabbitmq.ingest.url = "amqps://gateway:pw@rabbit.internal/%2F";
    expect(validateConfig({ ...base, cluster }, "test", new Set()).cluster.rabbitmq.ingest).toEqual({
      urls: ["amqps://gateway:pw@rabbit.internal/%2F"],
      queue: "ata.ingest",
      partitions: 1,
      prefetch: 500,
      maxDeliveries: 5,
      reconnect: { minMs: 500, maxMs: 30_000 },
      balance: { enabled: false, checkMs: 1000, stableMs: 5000, activeMs: 3000 },
    });
  });

  const withIngest = (ingest: Record<string, unknown>) => ({
    ...base,
    cluster: { rabbitmq: { enabled: true, secret: "s".repeat(32), ingest } },
  });
  const problems = (raw: unknown) => {
    try {
      validateConfig(raw, "test", new Set());
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };

  it("takes 1 to 256 ingest partitions, each refusal by its path", () => {
    const url = "amqp://gw:pw@rabbit-1:5672/%2F";
    expect(
      validateConfig(withIngest({ url, partitions: 256 }), "test", new Set()).cluster.rabbitmq.ingest,
    ).toMatchObject({ partitions: 256 });
    for (const partitions of [0, 257, 1.5, "4"])
      expect(problems(withIngest({ url, partitions })).map((p) => p.path)).toEqual([
        "cluster.rabbitmq.ingest.partitions",
      ]);
  });

  it("takes one URL per node of the cluster, in the order the consumer tries them", () => {
    const urls = [
      "amqp://gw:pw@rabbit-1:5672/%2F",
      "amqp://gw:pw@rabbit-2:5672/%2F",
      "amqp://gw:pw@rabbit-3:5672/%2F",
    ];
    expect(validateConfig(withIngest({ urls }), "test", new Set()).cluster.rabbitmq.ingest?.urls).toEqual(
      urls,
    );
  });

  it("refuses url and urls together, and neither, each by path", () => {
    expect(problems(withIngest({ url: "amqp://gw:pw@a", urls: ["amqp://gw:pw@b"] }))).toEqual([
      {
        path: "cluster.rabbitmq.ingest.url",
        message: "give url (one node) or urls (the cluster's nodes), not both",
      },
    ]);
    expect(problems(withIngest({ queue: "q" }))).toEqual([
      {
        path: "cluster.rabbitmq.ingest.urls",
        message: "name RabbitMQ: url for one node, or urls with one URL per node of the cluster",
      },
    ]);
  });

  it("lists each bad URL of the list by its index, and refuses an empty list and a URL given twice", () => {
    expect(
      problems(withIngest({ urls: ["amqp://gw:pw@a", "http://b", "amqp://c", "amqp://gw:pw@a"] })).map(
        (p) => p.path,
      ),
    ).toEqual([
      "cluster.rabbitmq.ingest.urls[1]",
      "cluster.rabbitmq.ingest.urls[2]",
      "cluster.rabbitmq.ingest.urls",
    ]);
    expect(problems(withIngest({ urls: [] }))).toEqual([
      { path: "cluster.rabbitmq.ingest.urls", message: "at least one URL" },
    ]);
  });
});
