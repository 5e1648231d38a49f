import { type JsonValue, parseJson } from '@pifleet/protocol';
import type { ApiResponse } from '../http/server.js';

/**
 * What the console reads from outside and what every console response carries. The HTTP server adds
 * `CONSOLE_HEADERS` under each response of the console's route group (event streams write their
 * own head: see sse.ts) and sends `json` bodies as `application/json; charset=utf-8`.
 */

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

export const HTML = 'text/html; charset=utf-8';

export function json(status: number, value: unknown): ApiResponse {
  return { status, json: value };
}

export function html(status: number, body: string, headers: Readonly<Record<string, string>> = {}): ApiResponse {
  return { status, headers: { 'content-type': HTML, ...headers }, body };
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** A page that says one thing (sign-in needed, console unavailable), in the console's CSP. */
export function messagePage(title: string, text: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
    `<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto"><h1>${escapeHtml(title)}</h1>` +
    `<p>${escapeHtml(text)}</p></body></html>`
  );
}

/**
 * Outside JSON (bus payloads from devices, request bodies): undefined when it is not JSON or nests
 * deeper than the hostile-input bound. A stored alert is serialized again for every page and
 * stream, so a 16 KB alert of 8,000 nested arrays would otherwise overflow `JSON.stringify`
 * there, every time.
 */
export function parseOutsideJson(body: Buffer): JsonValue | undefined {
  const parsed = parseJson(body.toString('utf8'));
  return parsed.ok ? parsed.value : undefined;
}
