/**
 * Column headings of the spreadsheet CSV (format=csv-da), in Danish and English. The machine CSV
 * keeps the column keys (`net_minutes`); a manager opening the file in Excel reads these instead.
 * Headings name the unit of the figure, as the dashboard's tables do. A key that means something
 * else in one table ("unit" is a ward, but a unit of measure in the model table) is listed as
 * "table.column".
 */
export type Lang = "da" | "en";

type Heading = readonly [da: string, en: string];

const HEADINGS: Record<string, Heading> = {
  site: ["Plejehjem", "Site"],
  unit: ["Afsnit", "Unit"],
  room: ["Stue", "Room"],
  device: ["Enhed", "Device"],
  profile: ["Enhedstype", "Device profile"],
  kind: ["Slags", "Kind"],
  enabled: ["Aktiv", "Enabled"],
  type: ["Type", "Type"],
  priority: ["Prioritet", "Priority"],
  category: ["Kategori", "Category"],
  period: ["Periode", "Period"],
  start: ["Start (lokal tid)", "Start (local time)"],
  computed: ["Beregnet", "Computed"],
  hour: ["Time på døgnet", "Hour of day"],
  count: ["Antal", "Count"],
  minutes: ["Minutter", "Minutes"],
  hours: ["Timer", "Hours"],
  net_minutes: ["Frigjort tid i alt (minutter)", "Net time freed (minutes)"],
  net_hours: ["Frigjort tid i alt (timer)", "Net time freed (hours)"],
  change_minutes: ["Ændring fra forrige periode (minutter)", "Change from previous period (minutes)"],
  night_supervision_minutes: ["Digitalt natligt tilsyn (minutter)", "Digital night supervision (minutes)"],
  night_supervision_count: ["Digitalt natligt tilsyn (antal)", "Digital night supervision (count)"],
  lift_transfers_minutes: ["Forflytninger med loftlift (minutter)", "Ceiling-lift transfers (minutes)"],
  lift_transfers_count: ["Forflytninger med loftlift (antal)", "Ceiling-lift transfers (count)"],
  remote_resolution_minutes: ["Fjernafklaring (minutter)", "Remote resolution (minutes)"],
  remote_resolution_count: ["Fjernafklaring (antal)", "Remote resolution (count)"],
  false_alarms_minutes: ["Falske alarmer (minutter)", "False alarms (minutes)"],
  false_alarms_count: ["Falske alarmer (antal)", "False alarms (count)"],
  resident_nights: ["Borgernætter", "Resident nights"],
  eligible_resident_nights: ["Borgernætter med natligt tilsyn", "Resident nights under night supervision"],
  night_visits: ["Natlige besøg", "Night visits"],
  checks_saved: ["Sparede fysiske tilsyn", "Physical checks saved"],
  lift_one_helper: ["Forflytninger med én hjælper", "Transfers by one helper"],
  lift_two_helper: ["Forflytninger med to hjælpere", "Transfers by two helpers"],
  observed_one_helper_share: ["Observeret andel med én hjælper", "Observed one-helper share"],
  alerts: ["Alarmer", "Alerts"],
  accept_n: ["Accepteret (antal)", "Accepted (count)"],
  accept_p50_sec: ["Tid til accept, median (sekunder)", "Time to accept, median (seconds)"],
  accept_p90_sec: ["Tid til accept, 90 % (sekunder)", "Time to accept, 90th percentile (seconds)"],
  attend_n: ["Fremmøde (antal)", "Attended (count)"],
  attend_p50_sec: ["Tid til fremmøde, median (sekunder)", "Time to attend, median (seconds)"],
  attend_p90_sec: ["Tid til fremmøde, 90 % (sekunder)", "Time to attend, 90th percentile (seconds)"],
  resolve_n: ["Afsluttet (antal)", "Resolved (count)"],
  resolve_p50_sec: ["Tid til afslutning, median (sekunder)", "Time to resolve, median (seconds)"],
  resolve_p90_sec: ["Tid til afslutning, 90 % (sekunder)", "Time to resolve, 90th percentile (seconds)"],
  open: ["Åbne", "Open"],
  resolved: ["Afsluttet", "Resolved"],
  cancelled: ["Annulleret", "Cancelled"],
  false_alarms: ["Falske alarmer", "False alarms"],
  attended_false_alarms: ["Falske alarmer med fremmøde", "False alarms attended"],
  rate: ["Andel falske", "False-alarm share"],
  fall_with_injury: ["Fald med skade", "Fall with injury"],
  fall_without_injury: ["Fald uden skade", "Fall without injury"],
  false_alarm: ["Falsk alarm", "False alarm"],
  assistance_given: ["Hjælp givet", "Assistance given"],
  no_action: ["Ingen handling", "No action"],
  devices: ["Enheder", "Devices"],
  fall_sensors: ["Faldsensorer", "Fall sensors"],
  window_hours: ["Periode (timer)", "Window (hours)"],
  observed_hours: ["Observeret (timer)", "Observed (hours)"],
  online_hours: ["Online (timer)", "Online (hours)"],
  offline_hours: ["Offline (timer)", "Offline (hours)"],
  unknown_hours: ["Ukendt (timer)", "Unknown (hours)"],
  online_share: ["Oppetid (andel)", "Uptime (share)"],
  fall_sensor_online_share: ["Oppetid, faldsensorer (andel)", "Uptime, fall sensors (share)"],
  residents: ["Borgere", "Residents"],
  residents_with_fall_sensor: ["Borgere med faldsensor", "Residents with a fall sensor"],
  resident_coverage: ["Borgere med faldsensor (andel)", "Residents with a fall sensor (share)"],
  rooms: ["Stuer", "Rooms"],
  rooms_with_fall_sensor: ["Stuer med faldsensor", "Rooms with a fall sensor"],
  outages: ["Udfald", "Outages"],
  longest_outage_minutes: ["Længste udfald (minutter)", "Longest outage (minutes)"],
  parameter: ["Parameter", "Parameter"],
  value: ["Værdi", "Value"],
  placeholder: ["Pladsholder", "Placeholder"],
  source: ["Kilde", "Source"],
  name: ["Navn", "Name"],
  detail: ["Detalje", "Detail"],
  "model.unit": ["Enhed", "Unit of measure"],
  // The quality report (src/reports/quality.ts).
  figure: ["Nøgletal", "Figure"],
  "figures.unit": ["Enhed", "Unit of measure"],
  n: ["Grundlag (antal)", "Based on (count)"],
  enough: ["Nok data", "Enough data"],
  note: ["Bemærkning", "Note"],
  week: ["Uge (mandag)", "Week (Monday)"],
  median_accept_sec: ["Tid til accept, median (sekunder)", "Time to accept, median (seconds)"],
};

/** The heading of a column; the key itself when no heading is known (a new column still exports). */
export function heading(table: string, column: string, lang: Lang): string {
  const h = HEADINGS[`${table}.${column}`] ?? HEADINGS[column];
  return h ? h[lang === "da" ? 0 : 1] : column;
}

/** Whether a column has a heading (the test checks every table of every report has them all). */
export function hasHeading(table: string, column: string): boolean {
  return `${table}.${column}` in HEADINGS || column in HEADINGS;
}
