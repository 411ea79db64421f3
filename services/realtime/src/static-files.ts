import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';

export interface StaticFile {
  body: Buffer;
  contentType: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/** Loads the page's files once at start-up: a handful of small files, served from memory. */
export function loadStaticFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const type = TYPES[extname(name)];
    if (!type || !statSync(path).isFile()) continue;
    files.set(`/${name}`, { body: readFileSync(path), contentType: type });
  }
  const index = files.get('/index.html');
  if (index) files.set('/', index);
  return files;
}
