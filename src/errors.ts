/**
 * The one error catalogue. Every error a client sees (HTTP API, staff WebSocket, a device's error
 * topic) carries one of these codes; clients branch on the code, people read the message.
 */

export const ERRORS = {
  // Device payloads (sent on ata/v1/<id>/errors and kept with the dead letter).
  bad_json: { status: 400, text: "The payload is not valid JSON" },
  bad_encoding: { status: 400, text: "The payload is not valid UTF-8" },
  bad_xml: { status: 400, text: "The payload is not a well-formed XML message of the expected kind" },
  bad_schema: { status: 400, text: "The payload does not match the device profile's schema" },
  unknown_event: { status: 400, text: "The payload names an event the profile does not know" },
  unknown_topic: { status: 400, text: "The device's profile does not publish on this topic" },
  unsupported: { status: 400, text: "The payload uses a feature this profile does not support" },
  payload_too_large: { status: 413, text: "The payload is larger than the gateway accepts" },
  profile_missing: { status: 500, text: "The device's profile is not installed on this gateway" },
  commit_failed: {
    status: 500,
    text: "The payload could not be logged: its commit failed every time, alone as well; it is kept as a dead letter",
  },
  unknown_device: {
    status: 404,
    text: "A bridged network sent a message for a device this gateway has not registered",
  },
  // Requests (HTTP and WebSocket).
  bad_request: { status: 400, text: "The request is malformed" },
  invalid_body: { status: 400, text: "The request body does not match the schema" },
  invalid_query: { status: 400, text: "A query parameter is invalid" },
  unauthenticated: { status: 401, text: "A valid token is required" },
  forbidden: { status: 403, text: "The token does not grant access to this resource" },
  not_found: { status: 404, text: "No such resource" },
  method_not_allowed: { status: 405, text: "Method not allowed" },
  conflict: { status: 409, text: "The resource is in a state that does not allow this" },
  device_exists: { status: 409, text: "A device with this id is already registered" },
  device_not_found: { status: 404, text: "No such device" },
  invalid_device: { status: 400, text: "The device definition is invalid" },
  unknown_placement: { status: 400, text: "Unknown site, unit or resident" },
  unknown_profile: { status: 400, text: "Unknown device profile" },
  alert_not_found: { status: 404, text: "No such alert" },
  illegal_transition: { status: 409, text: "The alert's state does not allow this action" },
  already_taken: { status: 409, text: "Another person has already accepted this alert" },
  already_signed_in: {
    status: 409,
    text: "This connection is already signed in; open a new one to sign in as someone else",
  },
  outcome_not_allowed: { status: 422, text: "This outcome is not allowed for the alert's type" },
  enrolment_invalid: { status: 401, text: "The enrolment code is unknown, used or expired" },
  device_token_not_found: { status: 404, text: "No such enrolled device" },
  invalid_capability: {
    status: 401,
    text: "The notification's permission is invalid, expired, or its phone or token was removed",
  },
  body_too_large: { status: 413, text: "The request body is too large" },
  rate_limited: { status: 429, text: "Too many requests" },
  internal: { status: 500, text: "Internal error" },
  unavailable: { status: 503, text: "The service is not ready" },
  // Cluster mode: a command for another node's partition whose answer did not arrive in time (taken
  // by the alert's owner and not answered yet, or the send itself failed). Never an owner's final
  // answer: a taken command is carried out exactly once (src/cluster/pg/owner-commands.ts).
  outcome_unknown: {
    status: 504,
    text: "The command's answer has not arrived yet: ask again with the same command id for its outcome",
  },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error meant for a client: the code is from the catalogue, the message is safe to show. */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly details?: unknown,
  ) {
    super(message ?? ERRORS[code].text);
    this.name = "ApiError";
    this.status = ERRORS[code].status;
  }
}

export function errorBody(code: ErrorCode, message?: string, details?: unknown) {
  return {
    error: { code, message: message ?? ERRORS[code].text, ...(details === undefined ? {} : { details }) },
  };
}
