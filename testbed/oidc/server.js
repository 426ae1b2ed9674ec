// A real OpenID Connect provider (oidc-provider) shaped like INDIGO IAM, on
// loopback, for the offload_spawner tests and demo.
//
//   node server.js CONFIG.json
//
// CONFIG: {
//   "port": 18080,                   // the issuer is http://127.0.0.1:<port>
//   "client": {"client_id": "...", "client_secret": "...", "redirect_uris": ["http://127.0.0.1:8000/hub/oauth_callback"]},
//   "extra_clients": [{"client_id": "jobs"}],   // more clients; one without client_secret is public
//   "users": {"alice": {"password": "...", "groups": ["cms"], "wlcg_groups": ["/cms", "/cms/higgs"], "email": "..."}},
//   "access_token_ttl": 3600, "refresh_token_ttl": 86400, "rotate_refresh_token": false,
//   "admin_token": "..."              // guards /admin/* (test control)
// }
// Prints one line "READY <issuer>" on stdout once it listens.
//
// IAM-like: routes /authorize /token /userinfo /jwks /revoke /introspect;
// access tokens are JWTs (so `exp` is in the token); a `groups` claim (scope
// profile) and a `wlcg.groups` claim with a leading slash (scope wlcg.groups);
// refresh tokens with offline_access. The redirect URI's loopback port may
// vary (application_type native, RFC 8252 7.3), so a hub on any free port fits.
//
// Test control (Authorization: Bearer <admin_token>):
//   GET  /admin/stats                   -> {"refresh": {"alice": 1}, "code": {...}}
//   POST /admin/users/<name>/revoke     -> the user's refresh grant and login fail (access tokens live on)
//   POST /admin/users/<name>/restore
//   POST /admin/ttl  {"access_token_ttl": N}  -> lifetime of tokens issued from now on

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';
import { createLocalJWKSet, jwtVerify } from 'jose';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const host = '127.0.0.1';
const users = config.users || {};
const revoked = new Set();
const stats = { refresh: {}, code: {} };
let accessTokenTTL = config.access_token_ttl || 3600;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'testbed', use: 'sig', alg: 'RS256' };
const publicJwk = { kty: signingJwk.kty, n: signingJwk.n, e: signingJwk.e, kid: 'testbed', use: 'sig', alg: 'RS256' };
const publicKeys = createLocalJWKSet({ keys: [publicJwk] });

// The profile's claims as IAM releases them, by scope.
function userClaims(name) {
  const user = users[name];
  const claims = {
    sub: name,
    preferred_username: name,
    name: user.name || name,
    email: user.email || `${name}@example.org`,
    email_verified: true,
  };
  if (user.groups) claims.groups = user.groups;
  claims['wlcg.groups'] = user.wlcg_groups || (user.groups || []).map((g) => `/${g}`);
  claims['wlcg.ver'] = '1.0';
  return claims;
}

const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['preferred_username', 'name', 'groups'],
  email: ['email', 'email_verified'],
  wlcg: ['wlcg.ver'],
  'wlcg.groups': ['wlcg.groups'],
};

function claimsForScopes(name, scopes) {
  const all = userClaims(name);
  const out = {};
  for (const scope of scopes) {
    for (const claim of SCOPE_CLAIMS[scope] || []) {
      if (claim in all) out[claim] = all[claim];
    }
  }
  return out;
}

// The JWT access tokens are for one resource server standing for "any WLCG
// service"; resource-server scopes mirror the OpenID scopes requested.
const RESOURCE = 'https://wlcg.cern.ch/jwt/v1/any';
const SCOPES = 'openid profile email offline_access wlcg wlcg.groups';

const provider = new Provider(`http://${host}:${config.port}`, {
  clients: [config.client, ...(config.extra_clients || [])].map((client) => ({
    client_id: client.client_id,
    // A client without a secret is a public one (token_endpoint_auth_method none).
    ...(client.client_secret ? { client_secret: client.client_secret } : {}),
    redirect_uris: client.redirect_uris || config.client.redirect_uris,
    application_type: 'native',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: client.token_endpoint_auth_method
      || (client.client_secret ? 'client_secret_basic' : 'none'),
  })),
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomUUID()] },
  routes: {
    authorization: '/authorize',
    token: '/token',
    userinfo: '/oidc-userinfo', // /userinfo is served below (it accepts the JWT access tokens)
    jwks: '/jwks',
    revocation: '/revoke',
    introspection: '/introspect',
    end_session: '/logout',
  },
  scopes: ['openid', 'offline_access'],
  claims: SCOPE_CLAIMS,
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: SCOPES,
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: accessTokenTTL,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: {
    AccessToken: () => accessTokenTTL,
    RefreshToken: config.refresh_token_ttl || 86400,
    Grant: config.refresh_token_ttl || 86400,
    Session: 86400,
    Interaction: 600,
    IdToken: 3600,
    AuthorizationCode: 60,
  },
  rotateRefreshToken: Boolean(config.rotate_refresh_token),
  // oidc-provider drops offline_access unless the client sends prompt=consent
  // (OIDC Core 11); IAM does not ask for that: issue refresh tokens to the
  // client whenever it may use them, not tied to the browser session.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  pkce: { required: () => false },
  async findAccount(_ctx, id) {
    // A revoked user's grants stop working: the refresh grant fails with invalid_grant.
    if (!users[id] || revoked.has(id)) return undefined;
    return {
      accountId: id,
      async claims(_use, scope) {
        return claimsForScopes(id, (scope || SCOPES).split(' '));
      },
    };
  },
  // IAM puts the groups into its JWT access tokens too.
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== 'AccessToken' || !users[token.accountId]) return undefined;
    const scopes = new Set((token.scope || '').split(' '));
    const claims = userClaims(token.accountId);
    const extra = {};
    if (scopes.has('wlcg.groups')) extra['wlcg.groups'] = claims['wlcg.groups'];
    if (scopes.has('profile')) extra.preferred_username = claims.preferred_username;
    return extra;
  },
});
provider.proxy = false;

// Discovery names our /userinfo (IAM's, which accepts the JWT access tokens).
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/.well-known/openid-configuration' && ctx.body && typeof ctx.body === 'object') {
    ctx.body.userinfo_endpoint = `${provider.issuer}/userinfo`;
  }
});

provider.on('grant.success', (ctx) => {
  const kind = ctx.oidc.params.grant_type === 'refresh_token' ? 'refresh' : 'code';
  const account = ctx.oidc.entities.Account?.accountId || ctx.oidc.entities.RefreshToken?.accountId || '?';
  stats[kind][account] = (stats[kind][account] || 0) + 1;
});
provider.on('grant.error', (ctx) => {
  if (ctx.oidc.params?.grant_type === 'refresh_token') {
    const account = ctx.oidc.entities.RefreshToken?.accountId || '?';
    stats.refresh_failed = stats.refresh_failed || {};
    stats.refresh_failed[account] = (stats.refresh_failed[account] || 0) + 1;
  }
});

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, message) {
  return `<!doctype html><html><head><title>Testbed IAM login</title></head><body>
<h1>Sign in</h1>${message ? `<p class="error">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form></body></html>`;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(type === 'application/json' ? JSON.stringify(body) : body);
}

// The consent prompt is granted automatically (what IAM does for a client
// an admin approved for the whole organisation).
async function grantConsent(req, res, details) {
  const { prompt, grantId, session, params } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  if (prompt.details.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(prompt.details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, url) {
  const match = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return send(res, 404, { error: 'not_found' });
  const [, uid, login] = match;
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, { error: 'interaction mismatch' });
  if (details.prompt.name === 'consent') return grantConsent(req, res, details);
  if (!login || req.method !== 'POST') return send(res, 200, loginPage(uid), 'text/html; charset=utf-8');
  const form = new URLSearchParams(await readBody(req));
  const username = form.get('username') || '';
  const user = users[username];
  if (!user || user.password !== form.get('password') || revoked.has(username)) {
    return send(res, 200, loginPage(uid, 'Invalid username or password.'), 'text/html; charset=utf-8');
  }
  return provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
}

// IAM's /userinfo answers for its JWT access tokens.
async function userinfo(req, res) {
  const auth = req.headers.authorization || '';
  const token = auth.startsWith('Bearer ') ? auth.slice(7) : new URL(req.url, 'http://x').searchParams.get('access_token');
  if (!token) return send(res, 401, { error: 'invalid_token' });
  let payload;
  try {
    ({ payload } = await jwtVerify(token, publicKeys, { issuer: provider.issuer }));
  } catch {
    return send(res, 401, { error: 'invalid_token', error_description: 'the access token is invalid or expired' });
  }
  // A revoked user's access tokens stay valid until they expire (as JWTs do at IAM).
  if (!users[payload.sub]) return send(res, 401, { error: 'invalid_token' });
  return send(res, 200, claimsForScopes(payload.sub, String(payload.scope || '').split(' ')));
}

async function admin(req, res, url) {
  if (!config.admin_token || req.headers.authorization !== `Bearer ${config.admin_token}`) {
    return send(res, 403, { error: 'forbidden' });
  }
  if (req.method === 'GET' && url.pathname === '/admin/stats') return send(res, 200, stats);
  const userAction = url.pathname.match(/^\/admin\/users\/([^/]+)\/(revoke|restore)$/);
  if (req.method === 'POST' && userAction) {
    const name = decodeURIComponent(userAction[1]);
    if (userAction[2] === 'revoke') revoked.add(name); else revoked.delete(name);
    return send(res, 200, { user: name, revoked: revoked.has(name) });
  }
  if (req.method === 'POST' && url.pathname === '/admin/ttl') {
    const body = JSON.parse((await readBody(req)) || '{}');
    if (!Number.isInteger(body.access_token_ttl) || body.access_token_ttl < 1) {
      return send(res, 400, { error: 'access_token_ttl must be a positive integer' });
    }
    accessTokenTTL = body.access_token_ttl;
    return send(res, 200, { access_token_ttl: accessTokenTTL });
  }
  return send(res, 404, { error: 'not_found' });
}

const providerCallback = provider.callback();
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, `http://${host}`);
  try {
    if (url.pathname === '/userinfo') return await userinfo(req, res);
    if (url.pathname.startsWith('/interaction/')) return await interaction(req, res, url);
    if (url.pathname.startsWith('/admin/')) return await admin(req, res, url);
  } catch (err) {
    console.error(`error on ${req.method} ${url.pathname}: ${err.name}: ${err.message}`);
    return send(res, 400, { error: err.name || 'error', error_description: err.message });
  }
  return providerCallback(req, res);
});

server.listen(config.port, host, () => {
  process.stdout.write(`READY ${provider.issuer}\n`);
});
