import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './errors.ts';
import type { Actor, TokensPort } from './ports.ts';
import type { Role } from './schemas.ts';
import { type BrowserSessions, cookieValue, SESSION_COOKIE } from './sessions.ts';
import { roleAllows } from './tokens.ts';

/** What a route needs: `public` (health, readiness, docs) or the least role allowed. */
export type Access = 'public' | Role;

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    /** A read-only GET a browser opens directly: the session cookie is accepted too (see sessions.ts). */
    browser?: boolean;
  }
  interface FastifyRequest {
    actor?: Actor;
  }
}

/** The bearer token of a request, or undefined. */
export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h.trim());
  return m?.[1];
}

/** The caller; only valid in handlers of routes that are not public (the hook put it there). */
export function actorOf(req: FastifyRequest): Actor {
  if (!req.actor) throw new ApiError('UNAUTHORIZED', 'no authenticated caller');
  return req.actor;
}

/**
 * Authenticates every request whose route declares `config.access` other than `public`: 401 without a
 * valid bearer token, 403 when the token's role is below the route's. Runs before body parsing, so an
 * unauthenticated caller learns nothing about the request schema. With `sessions` (browser routes
 * only), a request without a bearer header may instead carry the session cookie; it acts as the
 * session's token with that token's current role, and not at all once the token is revoked. A session
 * store that cannot be reached is a 503 (`SessionStoreError`), never a pass.
 */
export async function checkAccess(
  tokens: TokensPort,
  req: FastifyRequest,
  access: Access,
  sessions?: BrowserSessions,
): Promise<void> {
  if (access === 'public') return;
  const token = bearerToken(req);
  let actor: Actor | undefined;
  if (token) {
    actor = await tokens.verify(token);
    if (!actor) throw new ApiError('UNAUTHORIZED', 'invalid or revoked token');
  } else {
    const sid = sessions ? cookieValue(req.headers.cookie, SESSION_COOKIE) : undefined;
    if (!sid || !sessions)
      throw new ApiError('UNAUTHORIZED', 'missing bearer token (Authorization: Bearer <token>)');
    const tokenId = await sessions.tokenOf(sid);
    const view = tokenId ? (await tokens.list()).find((t) => t.id === tokenId) : undefined;
    if (!view)
      throw new ApiError(
        'UNAUTHORIZED',
        'browser session expired, ended or its token revoked; open a new one with POST /v1/session',
      );
    actor = { tokenId: view.id, name: view.name, role: view.role };
  }
  if (!roleAllows(actor.role, access))
    throw new ApiError('FORBIDDEN', `this needs the ${access} role; the token has ${actor.role}`, {
      details: { need: access, have: actor.role },
    });
  req.actor = actor;
}

export function installAuth(app: FastifyInstance, tokens: TokensPort, sessions?: BrowserSessions): void {
  app.decorateRequest('actor', undefined);
  app.addHook('onRequest', async (req) => {
    const { access, browser } = req.routeOptions.config;
    // Routes without a declared access are the 404 handler and plugin routes that guard themselves.
    if (access !== undefined) await checkAccess(tokens, req, access, browser ? sessions : undefined);
  });
}
