/**
 * Draws the console's app icons (web/icons/*.png) from the same shapes as web/favicon.svg: a navy
 * rounded square with a red warning triangle. Android and iOS want PNGs for a home-screen app
 * (iOS ignores SVG for apple-touch-icon), and the notification badge must be a monochrome
 * silhouette. Written out once and committed; run again with `npx tsx scripts/gen-icons.ts` after
 * changing the design. No image library: a tiny rasterizer with 4x4 supersampling and a PNG
 * encoder (RFC 2083) over node:zlib.
 */
import { writeFileSync } from "node:fs";
import { crc32, deflateSync } from "node:zlib";

type Rgba = [number, number, number, number];
const NAVY: Rgba = [0x13, 0x29, 0x4b, 255];
const RED: Rgba = [0xc8, 0x10, 0x2e, 255];
const WHITE: Rgba = [255, 255, 255, 255];
const NONE: Rgba = [0, 0, 0, 0];

/** The design on a 64-unit canvas; `full` fills the square (maskable icons, W3C manifest "purpose"). */
function paint(x: number, y: number, opts: { full: boolean; mono: boolean }): Rgba {
  // Vertices (32,12), (54,50), (10,50) as in favicon.svg: inside when on one side of all edges.
  const inTriangle = (px: number, py: number) => {
    const side = (ax: number, ay: number, bx: number, by: number) =>
      (px - bx) * (ay - by) - (ax - bx) * (py - by);
    const a = side(32, 12, 54, 50);
    const b = side(54, 50, 10, 50);
    const c = side(10, 50, 32, 12);
    return (a >= 0 && b >= 0 && c >= 0) || (a <= 0 && b <= 0 && c <= 0);
  };
  const bang = (x >= 29.5 && x <= 34.5 && y >= 25 && y <= 39) || (x - 32) ** 2 + (y - 44.5) ** 2 <= 9;
  if (opts.mono) {
    // Badge: white silhouette on transparent; the phone tints it.
    return inTriangle(x, y) && !bang ? WHITE : NONE;
  }
  const r = 14;
  const inSquare =
    opts.full ||
    (x >= r && x <= 64 - r) ||
    (y >= r && y <= 64 - r) ||
    [
      [r, r],
      [64 - r, r],
      [r, 64 - r],
      [64 - r, 64 - r],
    ].some(([cx, cy]) => (x - cx!) ** 2 + (y - cy!) ** 2 <= r * r);
  if (!inSquare) return NONE;
  if (bang && inTriangle(x, y)) return WHITE;
  if (inTriangle(x, y)) return RED;
  return NAVY;
}

/** `scale` < 1 shrinks the symbol around the centre: maskable icons keep it in the 80% safe zone. */
function render(size: number, opts: { full: boolean; mono: boolean; scale?: number }): Buffer {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  const ss = 4;
  const scale = opts.scale ?? 1;
  for (let py = 0; py < size; py++) {
    raw[py * (size * 4 + 1)] = 0; // filter: none
    for (let px = 0; px < size; px++) {
      const acc = [0, 0, 0, 0];
      for (let sy = 0; sy < ss; sy++)
        for (let sx = 0; sx < ss; sx++) {
          let x = ((px + (sx + 0.5) / ss) / size) * 64;
          let y = ((py + (sy + 0.5) / ss) / size) * 64;
          x = 32 + (x - 32) / scale;
          y = 32 + (y - 32) / scale;
          const c = opts.full && (x < 0 || x > 64 || y < 0 || y > 64) ? NAVY : paint(x, y, opts);
          for (let i = 0; i < 4; i++) acc[i]! += c[i]! * (i === 3 ? 1 : c[3]! / 255);
        }
      const o = py * (size * 4 + 1) + 1 + px * 4;
      const alpha = acc[3]! / (ss * ss);
      for (let i = 0; i < 3; i++) raw[o + i] = alpha ? Math.round(acc[i]! / (ss * ss) / (alpha / 255)) : 0;
      raw[o + 3] = Math.round(alpha);
    }
  }
  return png(size, raw);
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

function png(size: number, raw: Buffer): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const out = new URL("../web/icons/", import.meta.url);
writeFileSync(new URL("icon-192.png", out), render(192, { full: false, mono: false }));
writeFileSync(new URL("icon-512.png", out), render(512, { full: false, mono: false }));
writeFileSync(new URL("maskable-512.png", out), render(512, { full: true, mono: false, scale: 0.8 }));
writeFileSync(new URL("apple-touch-icon.png", out), render(180, { full: true, mono: false, scale: 0.85 }));
writeFileSync(new URL("badge-96.png", out), render(96, { full: false, mono: true }));
