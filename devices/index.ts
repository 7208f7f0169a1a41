/**
 * The device catalogue: every profile, imported explicitly (no directory scanning at run time).
 * test/devices/catalogue.test.ts fails when a profile file in devices/ is missing here.
 */
import type { DeviceProfile } from "../src/model/profile.js";
import { aqaraMccgq11lm } from "./aqara-mccgq11lm.js";
import { aqaraWxkg11lm } from "./aqara-wxkg11lm.js";
import { ceilingLift } from "./ceiling-lift.js";
import { milesightVs373 } from "./milesight-vs373.js";
import { milesightVs373Lorawan } from "./milesight-vs373-lorawan.js";
import { milesightWs301 } from "./milesight-ws301.js";
import { nativeProfile } from "./native.js";
import { scaipBedMat } from "./scaip-bedmat.js";
import { scaipPendant } from "./scaip-pendant.js";
import { tuyaMirHe200TyFall } from "./tuya-mir-he200-ty-fall.js";
import { vayyarCare } from "./vayyar-care.js";

export const PROFILES: readonly DeviceProfile[] = [
  nativeProfile,
  vayyarCare,
  milesightVs373,
  scaipPendant,
  scaipBedMat,
  ceilingLift,
  // Through network-server bridges (src/bridges/): LoRaWAN and zigbee2mqtt.
  milesightVs373Lorawan,
  milesightWs301,
  aqaraMccgq11lm,
  aqaraWxkg11lm,
  tuyaMirHe200TyFall,
];

const BY_ID: ReadonlyMap<string, DeviceProfile> = new Map(PROFILES.map((p) => [p.id, p]));

export function getProfile(id: string): DeviceProfile | undefined {
  return BY_ID.get(id);
}
