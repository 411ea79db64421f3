/**
 * `?from=&to=` bounds on receivedAt: strict RFC 3339 date-time (section 5.6: a `T`, seconds,
 * and an explicit `Z` or `±hh:mm` offset), turned into a UTC timestamp Postgres always accepts.
 * Written here rather than taken from ajv-formats, whose date-time also accepts a space
 * separator, a missing offset and `+hhmm`, none of which RFC 3339 allows.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const isLeapYear = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);

/**
 * The instant as a UTC literal with microseconds (Postgres' precision), or undefined when
 * `text` is not an RFC 3339 date-time. A fraction finer than a microsecond is rounded up:
 * stored times are whole microseconds, so `t >= from` and `t < to` keep their meaning.
 * An offset can carry an instant outside years 1-9999, which Postgres does not take as
 * written: those become -infinity or infinity, which select the same rows.
 */
export function parseTimestamp(text: string): string | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const fraction = m[7] ?? '';
  const offset = m[8] ? (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10])) : 0;
  if (month < 1 || month > 12 || day < 1) return undefined;
  if (day > (month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1]!)) return undefined;
  // Second 60 is a leap second (RFC 3339 5.7); like Postgres, it is read as the next minute's 00.
  if (hour > 23 || minute > 59 || second > 60 || Number(m[9] ?? 0) > 23 || Number(m[10] ?? 0) > 59) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute - offset, second, 0);
  let micros = BigInt(date.getTime()) * 1000n + BigInt(fraction.slice(0, 6).padEnd(6, '0'));
  if (/[1-9]/.test(fraction.slice(6))) micros += 1n;
  // Floor division: instants before 1970 are negative.
  const millis = micros >= 0n ? micros / 1000n : (micros - 999n) / 1000n;
  const whole = new Date(Number(millis));
  if (whole.getUTCFullYear() < 1) return '-infinity';
  if (whole.getUTCFullYear() > 9999) return 'infinity';
  return `${whole.toISOString().slice(0, -1)}${String(micros - millis * 1000n).padStart(3, '0')}Z`;
}

export interface TimeRange {
  /** Inclusive lower bound on receivedAt, as a Postgres timestamptz literal. */
  from?: string;
  /** Exclusive upper bound. */
  to?: string;
}

export const TIME_RANGE_PARAMETERS = ['from', 'to'] as const;
