/** The contract's default ports ("Services and default ports"); each is changed with PORT. */
export const DEFAULT_PORTS = { realtime: 8080, ingest: 8081, query: 8082, persister: 8083 } as const;

export type ServiceName = keyof typeof DEFAULT_PORTS;
