import type { Registry } from '@falcon/shared';

/** Query's own metrics; the process and pool basics come with the registry. */
export type QueryMetrics = Record<string, never>;

export function createQueryMetrics(_registry: Registry): QueryMetrics {
  return {};
}
