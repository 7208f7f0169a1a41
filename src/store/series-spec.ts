/**
 * Which time-series store the configuration names, as plain data a worker thread can be given: the
 * gateway's main thread and its sink thread each make their own store from the same spec.
 */
import type { Logger } from "../log.js";
import { EmbeddedSeriesStore } from "./embedded-series.js";
import { InfluxStore, type InfluxStoreOptions } from "./influx.js";
import type { TimeSeriesStore } from "./timeseries.js";

export type SeriesStoreSpec =
  | { kind: "embedded"; path: string }
  | { kind: "influx"; options: InfluxStoreOptions };

/**
 * The store a spec names. `writerLog`: embedded writes go through a writer thread of their own (the
 * main thread's store); without it they run on the calling thread (the sink thread, already off the
 * event loop).
 */
export function seriesStoreFrom(spec: SeriesStoreSpec, writerLog?: Logger): TimeSeriesStore {
  if (spec.kind === "embedded")
    return new EmbeddedSeriesStore({
      path: spec.path,
      ...(writerLog ? { writerThread: { log: writerLog } } : {}),
    });
  return new InfluxStore(spec.options);
}
