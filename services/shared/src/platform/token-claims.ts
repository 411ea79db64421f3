import { decodeJwt } from 'jose';

/**
 * The scopes a JWT claims, read WITHOUT verifying it: only for checking a token the operator
 * configured (which one it is, not whether to trust it). Undefined when it is not a JWT.
 */
export function unverifiedScopes(token: string): Set<string> | undefined {
  try {
    const scope = decodeJwt(token)['scope'];
    return new Set(typeof scope === 'string' ? scope.split(' ').filter(Boolean) : []);
  } catch {
    return undefined;
  }
}
