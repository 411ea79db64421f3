import { stopTarget } from './target.js';

/** Mocha root hooks: the local stack (if one was started) is stopped once, after every file. */
export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopTarget();
  },
};
