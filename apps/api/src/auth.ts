import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './errors.ts';
import type { Actor, TokensPort } from './ports.ts';
import type { Role } from './schemas.ts';
import { roleAllows } from './tokens.ts';

/** What a route needs: `public` (health, readiness, docs) or the least role allowed. */
export type Access = 'public' | Role;

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
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
 * unauthenticated caller learns nothing about the request schema.
 */
export async function checkAccess(tokens: TokensPort, req: FastifyRequest, access: Access): Promise<void> {
  if (access === 'public') return;
  const token = bearerToken(req);
  if (!token) throw new ApiError('UNAUTHORIZED', 'missing bearer token (Authorization: Bearer <token>)');
  const actor = await tokens.verify(token);
  if (!actor) throw new ApiError('UNAUTHORIZED', 'invalid or revoked token');
  if (!roleAllows(actor.role, access))
    throw new ApiError('FORBIDDEN', `this needs the ${access} role; the token has ${actor.role}`, {
      details: { need: access, have: actor.role },
    });
  req.actor = actor;
}

export function installAuth(app: FastifyInstance, tokens: TokensPort): void {
  app.decorateRequest('actor', undefined);
  app.addHook('onRequest', async (req) => {
    const access = req.routeOptions.config.access;
    // Routes without a declared access are the 404 handler and plugin routes that guard themselves.
    if (access !== undefined) await checkAccess(tokens, req, access);
  });
}
