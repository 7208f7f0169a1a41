/**
 * What an external profile module receives when its default export is a function: the gateway's own
 * zod, DecodeError and the blocks devices/*.ts are built from. A profile in /etc/ata/profiles cannot
 * import the gateway's node_modules or source by a relative path, and a DecodeError from another copy
 * of the class would not be recognised as one (the gateway tells a rejection from a decoder bug with
 * `instanceof`), so these come in as an argument rather than by import.
 *
 *   export default ({ z, blocks }) => ({ id: "acme/button", ..., decode: blocks.byChannel({ ... }) });
 *
 * TypeScript profiles can annotate the argument with `import type { ProfileKit } from
 * "<gateway>/src/profiles/kit.js"`; a type-only import is erased, so nothing is loaded from there.
 */
import { z } from "zod";
import * as blocks from "../../devices/blocks.js";
import { DecodeError, type DeviceProfile, parseJson } from "../model/profile.js";

export interface ProfileKit {
  z: typeof z;
  DecodeError: typeof DecodeError;
  parseJson: typeof parseJson;
  blocks: typeof blocks;
}

export const PROFILE_KIT: ProfileKit = Object.freeze({ z, DecodeError, parseJson, blocks });

/** The shape of a profile module's default export. */
export type ProfileExport = DeviceProfile | ((kit: ProfileKit) => DeviceProfile);
