import { ConfigError } from '@falcon/shared';

/** What a service's loadConfig refuses in `env`, every problem at once; none when it loads. */
export function configProblems(loadConfig: (env: Record<string, string>) => unknown, env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}
