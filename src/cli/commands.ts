/**
 * Commands beyond device administration, each contributed by its feature (tokens by the staff
 * channel, simulate by the simulator). Listed explicitly, not discovered from the filesystem.
 */
import type { CliContext } from "./ata.js";

export interface CliCommand {
  name: string;
  usage: string;
  run(ctx: CliContext): Promise<void> | void;
}

export const extraCommands: CliCommand[] = [];
