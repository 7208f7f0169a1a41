/**
 * Outcomes per alert type: how the alerts raised in the range ended, counted per type, with the
 * outcomes that type allows (src/alerts/outcomes.ts) so a reader sees which columns could be
 * non-zero. Outcomes recorded before the table existed are counted where they fall, allowed or not.
 */

import { OUTCOMES, type Outcome } from "../alerts/model.js";
import { allowedOutcomes } from "../alerts/outcomes.js";
import {
  type RangeOf,
  type ReportContext,
  rangeView,
  type Scope,
  scopedAlerts,
  type Table,
} from "./queries.js";

interface Counts {
  alerts: number;
  open: number;
  resolved: number;
  cancelled: number;
  outcomes: Record<Outcome, number>;
}

const zero = (): Counts => ({
  alerts: 0,
  open: 0,
  resolved: 0,
  cancelled: 0,
  outcomes: Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>,
});

export async function outcomesReport(ctx: ReportContext, scope: Scope, rangeOf: RangeOf) {
  const byType = new Map<string, Counts>();
  const total = zero();
  for (const site of scope.sites) {
    for await (const a of scopedAlerts(ctx, scope, site, rangeOf(site))) {
      let c = byType.get(a.type);
      if (!c) {
        c = zero();
        byType.set(a.type, c);
      }
      for (const x of [c, total]) {
        x.alerts++;
        if (a.open) x.open++;
        if (a.state === "resolved") x.resolved++;
        if (a.state === "cancelled") x.cancelled++;
        if (a.outcome && a.outcome in x.outcomes) x.outcomes[a.outcome as Outcome]++;
      }
    }
  }
  const rows = [...byType.entries()]
    .map(([type, c]) => ({ type, allowed: [...allowedOutcomes(type)], ...c }))
    .sort((a, b) => b.alerts - a.alerts || (a.type < b.type ? -1 : 1));
  const table: Table = {
    name: "by_type",
    columns: [
      "type",
      "alerts",
      "open",
      "resolved",
      "cancelled",
      ...OUTCOMES.map((o) => o.replace(/-/g, "_")),
    ],
    rows: rows.map((r) => [
      r.type,
      r.alerts,
      r.open,
      r.resolved,
      r.cancelled,
      ...OUTCOMES.map((o) => r.outcomes[o]),
    ]),
  };
  return {
    body: {
      report: "outcomes",
      ranges: rangeView(scope, rangeOf),
      outcomes: [...OUTCOMES],
      byType: rows,
      total,
    },
    tables: [table],
  };
}
