/**
 * `ata cluster`: moving a gateway to cluster mode. `export-to-postgres` copies the gateway's SQLite
 * state (its configured data directory) into an empty PostgreSQL database (pg/export.ts,
 * docs/cluster.md "Upgrading from a single process"). Exit 1 when the export is refused or fails;
 * nothing is imported then.
 */
import { join } from "node:path";
import type { CliCommand } from "../cli/commands.js";
import { ExportError, exportToPostgres } from "./pg/export.js";

const USAGE =
  "cluster export-to-postgres --url postgres://USER[:PASSWORD]@HOST[:PORT]/DB   (copy this gateway's state into an empty PostgreSQL; stop the gateway first)";

export const clusterCommand: CliCommand = {
  name: "cluster",
  usage: USAGE,
  async run({ config, args, out }) {
    const sub = args[args.indexOf("cluster") + 1];
    const i = args.indexOf("--url");
    const url = i === -1 ? undefined : args[i + 1];
    if (sub !== "export-to-postgres" || url === undefined || url.startsWith("--")) {
      process.stderr.write(`usage: ata ${USAGE}\n`);
      process.exitCode = 2;
      return;
    }
    const sqlitePath = join(config.dataDir, "ata.db");
    out(`exporting ${sqlitePath} (one read snapshot; what a running gateway writes after it is not carried)`);
    try {
      // The events' partitions are the cluster's: its configured count, when it is configured yet.
      const partitions = config.cluster.postgres?.partitions;
      await exportToPostgres({ sqlitePath, url, out, ...(partitions ? { partitions } : {}) });
    } catch (err) {
      if (!(err instanceof ExportError)) throw err;
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 1;
    }
  },
};
