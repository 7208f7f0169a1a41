import { describe, expect, it } from "vitest";
import { Slicer } from "../../src/util/slicer.js";

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe("Slicer", () => {
  it("keeps going inside a slice and hands the event loop back once the slice is used up", async () => {
    const slicer = new Slicer(200);
    let ran = false;
    setImmediate(() => {
      ran = true;
    });
    await slicer.pause();
    // Still inside the first 200 ms: no turn of the event loop, the immediate has not run.
    expect(ran).toBe(false);
    busy(210);
    await slicer.pause();
    expect(ran).toBe(true);

    // A new slice starts after the pause.
    let again = false;
    setImmediate(() => {
      again = true;
    });
    await slicer.pause();
    expect(again).toBe(false);
  });
});
