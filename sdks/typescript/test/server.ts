// A loopback HTTP server for the unit tests: each test routes requests to its own handler and counts hits.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  method: string;
  url: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export type Handler = (req: Received, res: http.ServerResponse) => void | Promise<void>;

export class TestServer {
  readonly url: string;
  readonly hits = new Map<string, number>();
  readonly received: Received[] = [];
  #server: http.Server;
  #routes: Array<{ method: string; pattern: RegExp; handler: Handler }> = [];

  private constructor(server: http.Server, url: string) {
    this.#server = server;
    this.url = url;
  }

  static async start(): Promise<TestServer> {
    let instance: TestServer | undefined;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => void instance!.#dispatch(req, Buffer.concat(chunks), res));
    });
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    instance = new TestServer(server, `http://127.0.0.1:${port}`);
    return instance;
  }

  on(method: string, pattern: RegExp, handler: Handler): this {
    this.#routes.unshift({ method, pattern, handler });
    return this;
  }

  count(key: string): number {
    return this.hits.get(key) ?? 0;
  }

  async #dispatch(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const path = url.split("?")[0]!;
    const received: Received = { method: req.method ?? "GET", url, path, headers: req.headers, rawHeaders: req.rawHeaders, body };
    this.received.push(received);
    const route = this.#routes.find((r) => r.method === received.method && r.pattern.test(path));
    const key = `${received.method} ${path}`;
    this.hits.set(key, (this.hits.get(key) ?? 0) + 1);
    if (!route) {
      res.writeHead(404, { "content-type": "application/problem+json" });
      res.end(JSON.stringify({ type: "urn:nexus:problem:not_found", title: "Not found", status: 404, code: "not_found" }));
      return;
    }
    try {
      await route.handler(received, res);
    } catch (error) {
      res.writeHead(500);
      res.end(String(error));
    }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

export function problem(res: http.ServerResponse, status: number, code: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/problem+json", ...headers });
  res.end(JSON.stringify({ type: `urn:nexus:problem:${code}`, title: `Problem ${code}`, status, code, ...extra }));
}

/** The body Nexus sends for a connection that is not active: "status" twice, the HTTP status and the connection's. */
export function notActive(res: http.ServerResponse, connectionId: string, status: string, error?: string): void {
  res.writeHead(409, { "content-type": "application/problem+json" });
  const errorPart = error ? `,"error":"${error}"` : "";
  res.end(`{"type":"urn:nexus:problem:connection_not_active","title":"The connection is ${status}, not active.","status":409,"detail":"Ask the user to connect again.","code":"connection_not_active","status":"${status}","connection_id":"${connectionId}"${errorPart}}`);
}

export function connection(id: string, status: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { connection_id: id, status, provider: "acme", workspace_id: "ws_1", scopes: ["read"], created_at: 1, updated_at: 2, expires_at: null, ...extra };
}

export function bearerToken(token: string, expiresAt: number | null): Record<string, unknown> {
  return { strategy: { type: "oauth2" }, credentials: { access_token: token, expires_at: expiresAt }, expires_at: expiresAt };
}

/** A promise and the function that resolves it: tests wait on events, never on sleeps. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
