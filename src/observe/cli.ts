/**
 * `ata observe`: enrolment secrets for observe mode, and what observed devices sent. Works on the
 * database like the other commands; the running gateway sees new enrolments at the next CONNECT.
 */
import { join } from "node:path";
import type { CliCommand } from "../cli/commands.js";
import { silentLogger } from "../log.js";
import { SecurityLog } from "../security/log.js";
import { openDb } from "../store/db.js";
import { draftProfile } from "./draft.js";
import { ObserveEnrolments } from "./enrolment.js";
import { createEnrolment, ObserveError, promote } from "./mode.js";
import { observedDetail } from "./routes.js";
import { ObserveStore } from "./store.js";

/** C0 and C1 control characters but tab: a payload must not drive the operator's terminal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;

const USAGE =
  "observe enrol --site S --unit U [--id ID] [--hours H] | enrolments | revoke ENROLMENT | list | show ID | draft ID [--samples] | promote ID --profile P [--room R] | forget ID";

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--")) throw new ObserveError("usage", `--${name} needs a value`);
  return v;
}

export const observeCommand: CliCommand = {
  name: "observe",
  usage: `${USAGE}   (observe mode: docs/observe.md)`,
  run({ config, args, out, openRegistry }) {
    const print = out;
    const at = args.indexOf("observe");
    const sub = args[at + 1];
    const target = args[at + 2];
    const needTarget = () => {
      if (!target || target.startsWith("--")) throw new ObserveError("usage", `usage: ata observe ${sub} ID`);
      return target;
    };
    if (sub === "enrol") {
      const site = flag(args, "site");
      const unit = flag(args, "unit");
      if (!site || !unit) throw new ObserveError("usage", "--site and --unit are required");
      const hours = flag(args, "hours");
      if (hours !== undefined && !(Number(hours) > 0))
        throw new ObserveError("usage", "--hours takes a positive number");
      const { registry, close } = openRegistry();
      const db = openDb({ path: join(config.dataDir, "ata.db") });
      try {
        const { enrolment, secret } = createEnrolment(
          { config: config.observe, sites: config.sites, registry, enrolments: new ObserveEnrolments(db) },
          {
            siteId: site,
            unitId: unit,
            deviceId: flag(args, "id") ?? null,
            ...(hours !== undefined ? { ttlHours: Number(hours) } : {}),
            createdBy: "cli",
          },
        );
        new SecurityLog(db, silentLogger()).record({
          kind: "admin_action",
          actor: "cli",
          subject: enrolment.id,
          detail: {
            action: "observe_enrolment_created",
            site,
            unit,
            ...(enrolment.deviceId ? { device: enrolment.deviceId } : {}),
          },
        });
        out(
          `enrolment ${enrolment.id} for ${site}/${unit}${enrolment.deviceId ? ` (device ${enrolment.deviceId} only)` : ""}`,
        );
        out(`secret: ${secret}`);
        out(
          `valid until ${enrolment.expiresAt}; the first device id that connects with it (as the MQTT password) is bound to it`,
        );
        out("(shown once; the gateway keeps only a hash)");
      } finally {
        db.close();
        close();
      }
      return;
    }
    if (sub === "promote") {
      const id = needTarget();
      const profile = flag(args, "profile");
      if (!profile) throw new ObserveError("usage", "--profile is required");
      const { registry, close } = openRegistry();
      const db = openDb({ path: join(config.dataDir, "ata.db") });
      try {
        const store = new ObserveStore(db, {
          perDevice: config.observe.perDevice,
          total: config.observe.total,
          maxPayloadBytes: config.observe.maxPayloadBytes,
        });
        const { device, secret } = promote(
          { registry, store },
          { deviceId: id, profile, roomId: flag(args, "room") ?? null },
        );
        new SecurityLog(db, silentLogger()).record({
          kind: "admin_action",
          actor: "cli",
          subject: id,
          detail: { action: "observe_promoted", profile },
        });
        out(`promoted ${device.id} to ${device.profile} in ${device.siteId}/${device.unitId}`);
        if (secret) out(`secret: ${secret}\n(shown once; the gateway keeps only a hash)`);
        else out("it keeps its secret; the gateway drops its observed session within seconds");
      } finally {
        db.close();
        close();
      }
      return;
    }
    const db = openDb({ path: join(config.dataDir, "ata.db") });
    try {
      const store = new ObserveStore(db, {
        perDevice: config.observe.perDevice,
        total: config.observe.total,
        maxPayloadBytes: config.observe.maxPayloadBytes,
      });
      const enrolments = new ObserveEnrolments(db);
      /** A device's channels, inferred fields and latest samples; a stranger's bytes escaped for the terminal. */
      const show = (id: string) => {
        const detail = observedDetail(store, id, Number(flag(args, "limit") ?? 10));
        if (!detail) throw new ObserveError("not_found", `no observed device "${id}"; see ata observe list`);
        const out = (line: string) =>
          print(line.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`));
        const d = detail.device;
        out(`${d.deviceId}\t${d.siteId}/${d.unitId}\tvia ${d.via}\tfirst ${d.firstAt}\tlast ${d.lastAt}`);
        out(
          `received ${d.received}\tstored ${d.stored}\tdropped quota ${d.dropped.quota}, rate ${d.dropped.rate}`,
        );
        for (const c of detail.channels) {
          out(
            `channel ${c.channel}\t${c.format}\t${c.samples} samples\t${c.sizes.min === c.sizes.max ? c.sizes.min : `${c.sizes.min}..${c.sizes.max}`} B${c.firstBytes.length ? `\tfirst bytes ${c.firstBytes.slice(0, 4).join(",")}` : ""}`,
          );
          for (const f of c.fields) out(`  ${f.path}\t${f.type}${f.optional ? "?" : ""}\t${f.seen}`);
        }
        out("latest samples:");
        for (const s of detail.samples)
          out(
            [
              s.receivedAt,
              s.channel,
              `${s.size} B${s.cut ? " (cut)" : ""}`,
              "text" in s ? s.text : `hex ${s.hex}`,
            ].join("\t"),
          );
      };
      switch (sub) {
        case "enrolments":
          for (const e of enrolments.list()) {
            const state = e.revokedAt
              ? "REVOKED"
              : Date.parse(e.expiresAt) <= Date.now()
                ? "expired"
                : e.usedAt
                  ? "bound"
                  : "unused";
            out(
              [e.id, `${e.siteId}/${e.unitId}`, e.deviceId ?? "-", state, `until ${e.expiresAt}`].join("\t"),
            );
          }
          return;
        case "revoke": {
          const id = needTarget();
          if (!enrolments.revoke(id)) throw new ObserveError("not_found", `no active enrolment "${id}"`);
          new SecurityLog(db, silentLogger()).record({
            kind: "admin_action",
            actor: "cli",
            subject: id,
            detail: { action: "observe_enrolment_revoked" },
          });
          out(`revoked ${id}`);
          return;
        }
        case "list": {
          const u = store.usage();
          out(
            `observe mode ${config.observe.enabled ? `ON (${config.observe.sites?.join(",") ?? "every site"})` : "off"}\tstored ${u.stored} of ${u.quota.total}\tdropped device_quota ${u.dropped.device} total_quota ${u.dropped.total}`,
          );
          for (const d of store.list()) {
            const channels = store.channels(d.deviceId).map((c) => `${c.channel}:${c.samples}`);
            out(
              [
                d.deviceId,
                `${d.siteId}/${d.unitId}`,
                d.via,
                `received ${d.received}`,
                `stored ${d.stored}`,
                `dropped ${d.dropped.quota + d.dropped.rate}`,
                channels.join(",") || "-",
                `last ${d.lastAt}`,
              ].join("\t"),
            );
          }
          return;
        }
        case "show": {
          show(needTarget());
          return;
        }
        case "draft": {
          const id = needTarget();
          if (!store.get(id))
            throw new ObserveError("not_found", `no observed device "${id}"; see ata observe list`);
          const draft = draftProfile(id, store.samples(id));
          if (args.includes("--samples")) out(draft.samplesJsonl);
          else out(draft.module);
          return;
        }
        case "forget": {
          const id = needTarget();
          if (!store.get(id)) throw new ObserveError("not_found", `no observed device "${id}"`);
          out(`forgot ${id}: ${store.forget(id)} samples deleted`);
          return;
        }
        default:
          // `ata observe <id>`: the same as show.
          if (sub && !sub.startsWith("--") && store.get(sub)) return show(sub);
          throw new ObserveError("usage", `usage: ata ${USAGE}`);
      }
    } finally {
      db.close();
    }
  },
};
