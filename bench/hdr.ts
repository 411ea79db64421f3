import * as hdrHistogram from 'hdr-histogram-js';

/** A latency histogram in milliseconds with microsecond resolution. */
export function hdr() {
  const h = hdrHistogram.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  return {
    record: (ms: number) => h.recordValue(Math.max(1, Math.round(ms * 1000))),
    count: () => h.totalCount,
    p: (percentile: number) => h.getValueAtPercentile(percentile) / 1000,
  };
}
